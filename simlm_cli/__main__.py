from simlm_cli.cli import main

main()

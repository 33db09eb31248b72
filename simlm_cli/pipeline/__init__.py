"""The work behind each command, callable from Python; commands only parse options and call these."""

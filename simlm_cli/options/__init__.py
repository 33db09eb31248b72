"""Each command's config: a frozen dataclass whose fields are its flags, declared once (`simlm_cli.flags`).

Light modules (no numpy, torch or Lucene): the commands build their flags from them when the CLI starts, and the
library (`simlm_cli.pipeline`) takes the same objects."""

"""Who may call: access keys and per-key limits (``gate``), browser defences (``browser``),
secret scrubbing of errors and logs (``secrets``) and listen-address checks (``listen``)."""

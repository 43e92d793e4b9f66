"""One module per ``arbtui`` subcommand: the top floor, above the UI and the backend."""

"""The top floor: one module per ``arbtui`` subcommand (plus ``run``, the default job).

``arbtui.cli`` parses the command line and dispatches here; each module exposes
``cli_main(command, argv, args) -> exit code`` and owns its own argument parsing. Only this
package (and the tests) may import the venue simulator (``arbtui.backend.sim``): see
docs/architecture.md for the layers and the import-linter contracts that keep them.
"""

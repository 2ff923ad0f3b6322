"""The command line: ``deepradscore COMMAND``. Only this package knows argparse.

``main`` declares every sub-command and maps errors to exit codes; one small module per command
group turns the parsed arguments into typed calls of the engine and prints the outcome.
"""

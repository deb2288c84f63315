"""The ``lale-geo`` command line: a click group and one thin module per command."""

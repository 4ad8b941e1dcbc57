"""What to run, as data: each function returns the ``Command`` for one step (argv, variables,
timeout), and runs nothing. The golden tests (tests/test_commands.py) pin them like Kamal's."""

"""Test machinery shared by the hub's test suites (dev only; never in an image)."""

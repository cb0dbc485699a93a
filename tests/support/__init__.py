"""Helpers the tests share: real servers and processes on free loopback ports."""

"""Plumbing: the Faust app, settings, topics, codecs adapters, web server and the `nudge` CLI.

Kept empty on purpose so `nudge rules ...` and other light commands don't import Faust.
"""

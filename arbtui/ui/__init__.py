"""The Textual dashboard: app, screens, widgets and the engine thread.

The only package that imports Textual (an import-linter contract keeps it so). It reads one
engine snapshot per refresh and never reaches into the backend's internals; see
docs/architecture.md.
"""

"""The web front end served by the API: pages (pages.py) and browser sessions with their
CSRF guard (session.py)."""

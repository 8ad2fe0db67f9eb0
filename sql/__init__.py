"""The schema migrations, NNN_*.sql, applied in order by `python -m shared.migrate`
(shared/db.py). A package only so that the files travel inside an installed wheel."""

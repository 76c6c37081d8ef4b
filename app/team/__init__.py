"""Team mode's learning loop (docs/team.md): the shop's job queue and its worker (``jobs``), the
manager role (``roles``), adapters published in the shop's database (``adapters``) and the
watcher that brings the active one to every desktop (``watch``). Plain Python (no Qt).
"""

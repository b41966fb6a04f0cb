"""Adapters to the frameworks people train and evaluate with. Each module needs its own optional extra and is
never imported by the core: ``trl`` (extra ``trl``), ``openenv`` (extra ``openenv``), ``inspect_tasks`` (extra
``inspect``), ``verl`` (no extra: the pure-Python part of a verl agent loop)."""

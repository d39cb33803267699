"""Alert rules, their state machine, the evaluator and the backtest (docs/architecture.md,
Alerts). Nothing here knows of Azure: the timer and the routes in function_app/alerts.py
call `evaluator.evaluate_tick`, `evaluator.evaluate` and the functions of `rules`."""

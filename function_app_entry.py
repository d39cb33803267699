"""The script the Azure Functions Python worker imports (PYTHON_SCRIPT_FILE_NAME).

`function_app/` is a package, so the entry cannot be called `function_app.py`; this file
exposes its one app object.
"""

from dtbase_core.config import limit_numeric_threads

limit_numeric_threads()  # before numpy is first imported (the forecast's activities)

from function_app import app  # noqa: E402

__all__ = ["app"]

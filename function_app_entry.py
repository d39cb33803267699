"""The script the Azure Functions Python worker imports (PYTHON_SCRIPT_FILE_NAME).

`function_app/` is a package, so the entry cannot be called `function_app.py`; this file
exposes its one app object.
"""

from function_app import app

__all__ = ["app"]

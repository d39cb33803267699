"""The DTBase Azure deployment, one module per concern; `stack.build` wires them together."""

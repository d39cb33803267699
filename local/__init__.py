"""Run the function app on a laptop without Azure Functions Core Tools."""

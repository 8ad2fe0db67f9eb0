"""Operator and developer tools: the stack, the demo event, the load generator, pipelines."""

"""The embedded sandbox: a local AWS API plus a local Fargate agent."""

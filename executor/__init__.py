"""Covalent executor plugin: run electrons as AWS ECS Fargate tasks."""

"""Xiaoer (店小二): an end-cloud assistant for e-commerce customer-service staff."""

__version__ = "0.1.0"

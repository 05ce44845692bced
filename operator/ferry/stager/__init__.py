"""stager"""

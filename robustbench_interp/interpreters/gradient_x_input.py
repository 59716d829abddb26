"""(placeholder until implemented)"""

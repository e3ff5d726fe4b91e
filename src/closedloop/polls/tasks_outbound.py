"""tasks_outbound"""

"""api_connections"""

from ninja import Router

router = Router()

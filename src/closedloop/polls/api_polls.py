"""api_polls"""

from ninja import Router

router = Router()

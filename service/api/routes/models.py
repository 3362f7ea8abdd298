"""What a run config may name on this server: the operator's models, executors and queues."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import Reader, SettingsDep
from service.api.errors import responses
from service.api.schemas import ModelPublic, OfferPublic

router = APIRouter(tags=["models"], responses=responses(401))


@router.get("/models", response_model=OfferPublic)
def offer(settings: SettingsDep, principal: Reader) -> OfferPublic:
    """Returns the models a run picks with llm.use (never their URLs or paths), the default one,
    and the evaluation executors and queues a run may choose."""
    models = [ModelPublic(name=name, description=m.description, context_window=m.context_window,
                          price_per_1k_tokens=m.price_per_1k_tokens)
              for name, m in settings.models.items()]
    return OfferPublic(models=models, default_model=settings.default_model or "",
                       executors=list(settings.allowed_executors),
                       queues=list(settings.allowed_queues))

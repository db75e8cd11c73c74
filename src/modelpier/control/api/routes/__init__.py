"""Route modules of the control-plane API; each builds an ``APIRouter`` over its services."""

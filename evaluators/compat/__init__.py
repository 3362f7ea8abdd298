"""Stand-ins for peer packages that problem evaluators import (see openevolve/)."""

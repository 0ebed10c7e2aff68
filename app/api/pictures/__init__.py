"""Pictures of a case as SVG: the outcomes chart, the genogram and the ecomap.

Pure functions from what CaseService gathers (FHIR JSON) to SVG text, readable by programs
as well as people: each person or system is a <g class="person"> with data-ref (the FHIR
reference) and a <title>; each connection has class="link" and data-kind / data-from /
data-to.
"""

from app.api.pictures.ecomap import ecomap_svg
from app.api.pictures.genogram import genogram_svg
from app.api.pictures.outcomes import outcomes_svg

__all__ = ["ecomap_svg", "genogram_svg", "outcomes_svg"]

"""What the cluster costs per hour, from the request's fleets and the price table."""

from __future__ import annotations

import json
from importlib import resources

from .spec import ClusterSpec


def price_table() -> dict:
    return json.loads(resources.files(__package__).joinpath("prices.json").read_text())


def hourly_cost(
    request: dict, prices: dict | None = None, units: dict[str, int] | None = None, on_demand_only: bool = False
) -> dict:
    """Estimated USD/hour, EC2 + EMR surcharge, for the first instance type of each fleet;
    ``units`` overrides a fleet's size (e.g. the task fleet at the scaling maximum);
    ``on_demand_only`` prices (and labels) every fleet on-demand, Spot ones included."""
    prices = prices or price_table()
    total, lines = 0.0, []
    for fleet in request["Instances"]["InstanceFleets"]:
        itype = fleet["InstanceTypeConfigs"][0]["InstanceType"]
        p = prices["instances"][itype]
        spot = bool(fleet.get("TargetSpotCapacity")) and not on_demand_only
        n = (units or {}).get(fleet["Name"], fleet["TargetOnDemandCapacity"] + fleet["TargetSpotCapacity"])
        ec2 = p["ec2"] * (prices["spot_fraction"] if spot else 1.0)
        cost = n * (ec2 + p["emr"])
        total += cost
        lines.append(
            {
                "fleet": fleet["Name"],
                "instances": n,
                "type": itype,
                "market": "spot (assumed)" if spot else "on-demand",
                "usd_per_hour": round(cost, 3),
            }
        )
    return {"usd_per_hour": round(total, 3), "fleets": lines, "price_table": prices["_about"]}


def cost_summary(request: dict, spec: ClusterSpec) -> dict:
    at_start = hourly_cost(request)
    at_max_units = {"task-spot": spec.max_units - spec.core_units}
    at_max = hourly_cost(request, units=at_max_units)
    return {
        "at_start": at_start,
        "at_max_scale": at_max,
        "at_max_scale_without_spot": hourly_cost(request, units=at_max_units, on_demand_only=True),
    }

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
        "featurize": [featurize_estimate(request, spec, n) for n in (1_000_000, 10_000_000)],
    }


def featurize_estimate(request: dict, spec: ClusterSpec, images: int, prices: dict | None = None) -> dict:
    """Wall time and cost to featurize ``images`` at the fleet's maximum scale: executors' vCPUs x
    a per-vCPU throughput measured on the build machine (prices.json says where it comes from),
    priced with Spot task nodes and all on-demand, plus S3 requests (one GET per image, one PUT
    per ~2,000 rows, the listing at one LIST per 1,000 keys, or an inventory report)."""
    prices = prices or price_table()
    rate = prices["featurize"]
    vcpus = 0
    units = {"task-spot": spec.max_units - spec.core_units}
    for fleet in request["Instances"]["InstanceFleets"]:
        if fleet["Name"].startswith("master"):
            continue
        itype = fleet["InstanceTypeConfigs"][0]["InstanceType"]
        n = units.get(fleet["Name"], fleet["TargetOnDemandCapacity"] + fleet["TargetSpotCapacity"])
        vcpus += n * prices["instances"][itype]["vcpu"]
    per_s = vcpus * rate["images_per_s_per_vcpu"] * rate["efficiency"]
    hours = images / per_s / 3600
    s3 = prices["s3"]
    requests = images / 1000 * s3["get_per_1000"] + images / 2000 / 1000 * s3["put_per_1000"]
    listing = images / 1000 / 1000 * s3["list_per_1000"]
    return {
        "images": images,
        "executor_vcpus": vcpus,
        "images_per_s": round(per_s),
        "wall_hours": round(hours, 2),
        "wall_s": round(hours * 3600),
        "usd_spot": round(hours * hourly_cost(request, prices, units)["usd_per_hour"] + requests, 2),
        "usd_on_demand": round(
            hours * hourly_cost(request, prices, units, on_demand_only=True)["usd_per_hour"] + requests, 2
        ),
        "usd_s3_requests": round(requests, 2),
        "usd_listing": round(listing, 4),
        "usd_inventory_report": round(images / 1e6 * s3["inventory_per_million_objects"], 4),
        "assumption": rate["_about"],
    }

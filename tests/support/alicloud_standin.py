#!/usr/bin/env python3
"""A stand-in for Alibaba Cloud's ECS (2014-05-26) and VPC (2016-04-28) RPC APIs, for
tests/cloud_alicloud.rs: Alibaba Cloud has no emulator.

It is a second, independent implementation of the RPC signature (HMAC-SHA1, SignatureVersion
1.0, written here from the documentation with Python's hmac/hashlib/urllib), and every request
must carry a valid one, fresh common parameters and the parameters each action needs. It keeps
state (VPCs, vSwitches, security groups and their rules, instances, tags), moves resources
through Alibaba's statuses over time (a VPC is Pending before Available; an instance is
Pending, Starting, then Running with a made-up public address; a released instance keeps its
security group and vSwitch "in use" for a while after it disappears), answers in Alibaba's
JSON shapes and error shapes, and appends every call to a log (one JSON line each).

GET /_state (unsigned, not an Alibaba API) shows the whole state to the test.

Usage: alicloud_standin.py --key-id ID --key-secret SECRET [--token T] --log FILE
It prints the port it listens on (127.0.0.1) on its first line of stdout.
"""

import argparse
import base64
import binascii
import datetime
import hashlib
import hmac
import ipaddress
import itertools
import json
import re
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REGION = "cn-hangzhou"
ZONES = {
    "cn-hangzhou-h": ["ecs.c7.large", "ecs.g6.large"],
    "cn-hangzhou-i": ["ecs.g7.large", "ecs.c7.large"],
    "cn-hangzhou-j": ["ecs.g7.large"],
}
IMAGES = [
    ("ubuntu_22_04_x64_20G_alibase_20240926.vhd", "2024-09-26T08:00:00Z"),
    ("ubuntu_24_04_x64_20G_alibase_20240508.vhd", "2024-05-08T08:00:00Z"),
    ("ubuntu_24_04_x64_20G_alibase_20240812.vhd", "2024-08-12T08:00:00Z"),
    ("centos_7_9_x64_20G_alibase_20240628.vhd", "2024-06-28T08:00:00Z"),
]
ECS_ACTIONS = {
    "DescribeImages", "DescribeZones", "CreateSecurityGroup", "AuthorizeSecurityGroup",
    "RunInstances", "DescribeInstances", "DeleteInstances", "DescribeSecurityGroups",
    "DeleteSecurityGroup",
}
VPC_ACTIONS = {
    "CreateVpc", "DescribeVpcs", "DeleteVpc", "CreateVSwitch", "DescribeVSwitches",
    "DeleteVSwitch",
}
COMMON = {
    "Action", "Version", "Format", "AccessKeyId", "SignatureMethod", "SignatureVersion",
    "SignatureNonce", "Timestamp", "Signature", "SecurityToken",
}
# How long a resource stays in each status (seconds).
PENDING = 0.5
INSTANCE_PENDING = 1.0
INSTANCE_STARTING = 0.5
RELEASING = 1.5
STILL_IN_USE = 3.0


class ApiError(Exception):
    def __init__(self, status, code, message):
        super().__init__(code)
        self.status, self.code, self.message = status, code, message


def percent_encode(text):
    """RFC 3986: only A-Z a-z 0-9 - _ . ~ stay; UTF-8 bytes as %XY."""
    return urllib.parse.quote(text, safe="-_.~")


def expected_signature(method, params, secret):
    canonical = "&".join(
        percent_encode(k) + "=" + percent_encode(v)
        for k, v in sorted((k, v) for k, v in params.items() if k != "Signature")
    )
    to_sign = method + "&" + percent_encode("/") + "&" + percent_encode(canonical)
    mac = hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def parse_time(text):
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except (TypeError, ValueError):
        return None


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.vpcs, self.vswitches, self.groups, self.instances = {}, {}, {}, {}
        self.nonces = set()
        self.ids = itertools.count(1)
        self.tokens = {}

    def new_id(self, prefix):
        return "%s-%s%06d" % (prefix, uuid.uuid4().hex[:12], next(self.ids))

    # Time-driven statuses.
    def vpc_status(self, v):
        return "Available" if time.time() - v["created"] >= PENDING else "Pending"

    def instance_view(self, i):
        now = time.time()
        if i.get("released") is not None:
            return "Stopping" if now < i["released"] else None
        age = now - i["created"]
        if age < INSTANCE_PENDING:
            return "Pending"
        if age < INSTANCE_PENDING + INSTANCE_STARTING:
            return "Starting"
        return "Running"

    def in_use_by_instances(self, key, value):
        """Instances (also released ones, for a while) that use this group or vSwitch."""
        now = time.time()
        return [i for i in self.instances.values()
                if i[key] == value and (i.get("released") is None
                                        or now < i["released"] + STILL_IN_USE)]


def need(params, *names):
    for n in names:
        if not params.get(n):
            raise ApiError(400, "MissingParameter", "The input parameter \"%s\" that is mandatory for processing this request is not supplied." % n)
    return [params[n] for n in names]


def tags_of(params, require_seal=True):
    tags = []
    for n in itertools.count(1):
        k = params.get("Tag.%d.Key" % n)
        if k is None:
            break
        tags.append((k, params.get("Tag.%d.Value" % n, "")))
    keys = dict(tags)
    if require_seal:
        if "seal-build" not in keys or parse_time(keys.get("seal-expires")) is None:
            raise ApiError(400, "InvalidParameter.Tag", "stand-in: seal's resources carry seal-build and seal-expires tags")
    return tags


def ecs_tags(tags):
    return {"Tag": [{"TagKey": k, "TagValue": v} for k, v in tags]}


def vpc_tags(tags):
    return {"Tag": [{"Key": k, "Value": v} for k, v in tags]}


def tag_filter(params, tags):
    want = params.get("Tag.1.Key")
    return want is None or any(k == want for k, _ in tags)


def page(params, items):
    size = int(params.get("PageSize", "10"))
    number = int(params.get("PageNumber", "1"))
    if not 1 <= size <= 100 or number < 1:
        raise ApiError(400, "InvalidParameter", "bad PageSize/PageNumber")
    return items[(number - 1) * size: number * size], {
        "TotalCount": len(items), "PageSize": size, "PageNumber": number}


class Api:
    def __init__(self, state):
        self.s = state

    def check_region(self, p):
        (region,) = need(p, "RegionId")
        if region != REGION:
            raise ApiError(404, "InvalidRegionId.NotFound", "The specified RegionId does not exist.")

    def client_token(self, p, action, make):
        token = p.get("ClientToken")
        if token and (action, token) in self.s.tokens:
            return self.s.tokens[(action, token)]
        answer = make()
        if token:
            self.s.tokens[(action, token)] = answer
        return answer

    # ECS
    def DescribeImages(self, p):
        self.check_region(p)
        if p.get("ImageOwnerAlias") != "system":
            raise ApiError(400, "stand-in.Unexpected", "seal looks for system images")
        # ImageName is a fuzzy search: a substring, no wildcards.
        name = p.get("ImageName", "")
        images = [{"ImageId": i, "ImageName": i, "CreationTime": t, "Status": "Available",
                   "OSType": "linux", "Architecture": "x86_64", "ImageOwnerAlias": "system"}
                  for i, t in IMAGES if name in i]
        items, meta = page(p, images)
        return dict(meta, Images={"Image": items}, RegionId=REGION)

    def DescribeZones(self, p):
        self.check_region(p)
        return {"Zones": {"Zone": [
            {"ZoneId": z, "LocalName": z, "AvailableInstanceTypes": {"InstanceTypes": types}}
            for z, types in ZONES.items()]}}

    def CreateSecurityGroup(self, p):
        self.check_region(p)
        (vpc,) = need(p, "VpcId")
        if vpc not in self.s.vpcs:
            raise ApiError(404, "InvalidVpcId.NotFound", "The specified VpcId does not exist.")
        tags = tags_of(p)

        def make():
            gid = self.s.new_id("sg")
            self.s.groups[gid] = {"id": gid, "vpc": vpc, "name": p.get("SecurityGroupName", ""),
                                  "tags": tags, "rules": []}
            return {"SecurityGroupId": gid}
        return self.client_token(p, "CreateSecurityGroup", make)

    def AuthorizeSecurityGroup(self, p):
        self.check_region(p)
        gid, proto, ports = need(p, "SecurityGroupId", "IpProtocol", "PortRange")
        group = self.s.groups.get(gid)
        if group is None:
            raise ApiError(404, "InvalidSecurityGroupId.NotFound", "The specified SecurityGroupId does not exist.")
        if proto.lower() not in ("tcp", "udp", "icmp", "gre", "all"):
            raise ApiError(400, "InvalidIpProtocol.Malformed", "bad IpProtocol")
        if not re.fullmatch(r"\d+/\d+", ports):
            raise ApiError(400, "InvalidIpPortRange.Malformed", "bad PortRange")
        cidr = p.get("SourceCidrIp") or p.get("Ipv6SourceCidrIp")
        if not cidr:
            raise ApiError(400, "MissingParameter", "a source is needed")
        try:
            ipaddress.ip_network(cidr)
        except ValueError:
            raise ApiError(400, "InvalidSourceCidrIp.Malformed", "bad SourceCidrIp")
        group["rules"].append({"IpProtocol": proto, "PortRange": ports, "SourceCidrIp": cidr,
                               "Policy": p.get("Policy", "accept")})
        return {}

    def RunInstances(self, p):
        self.check_region(p)
        image, itype, gid, vsw, data = need(
            p, "ImageId", "InstanceType", "SecurityGroupId", "VSwitchId", "UserData")
        if image not in dict(IMAGES):
            raise ApiError(404, "InvalidImageId.NotFound", "The specified ImageId does not exist.")
        group = self.s.groups.get(gid)
        if group is None:
            raise ApiError(404, "InvalidSecurityGroupId.NotFound", "The specified SecurityGroupId does not exist.")
        vswitch = self.s.vswitches.get(vsw)
        if vswitch is None:
            raise ApiError(404, "InvalidVSwitchId.NotFound", "The specified VSwitchId does not exist.")
        if self.s.vpc_status(vswitch) != "Available":
            raise ApiError(403, "IncorrectVSwitchStatus", "The current status of vSwitch does not support this operation.")
        if group["vpc"] != vswitch["vpc"]:
            raise ApiError(403, "InvalidSecurityGroup.NotInDefaultVpc", "security group and vSwitch are in different VPCs")
        if itype not in ZONES.get(vswitch["zone"], []):
            raise ApiError(403, "InvalidResourceType.NotSupported", "This resource type is not supported in the zone")
        if int(p.get("InternetMaxBandwidthOut", "0")) <= 0:
            raise ApiError(400, "stand-in.NoPublicAddress", "without InternetMaxBandwidthOut the instance has no public address")
        if p.get("Amount", "1") != "1" or p.get("InstanceChargeType", "PostPaid") != "PostPaid":
            raise ApiError(400, "stand-in.Unexpected", "one pay-as-you-go instance")
        try:
            text = base64.b64decode(data, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError(400, "InvalidUserData.Base64FormatInvalid", "UserData is not base64")
        if not text.startswith("#cloud-config\n") or len(data) > 32768:
            raise ApiError(400, "InvalidUserData.Malformed", "stand-in: seal sends cloud-config")
        release = p.get("AutoReleaseTime")
        if release is not None:
            t = parse_time(release)
            if t is None or t < time.time() + 30 * 60:
                raise ApiError(400, "InvalidAutoReleaseTime.Malformed", "AutoReleaseTime must be at least 30 minutes ahead")
        tags = tags_of(p)

        def make():
            iid = self.s.new_id("i")
            n = len(self.s.instances) + 1
            self.s.instances[iid] = {
                "id": iid, "group": gid, "vswitch": vsw, "vpc": vswitch["vpc"], "type": itype,
                "image": image, "user_data": data, "tags": tags, "created": time.time(),
                "released": None, "public_ip": "47.98.%d.%d" % (n // 250, 1 + n % 250),
                "auto_release": release, "name": p.get("InstanceName", ""),
            }
            return {"InstanceIdSets": {"InstanceIdSet": [iid]}, "TradePrice": 0.5}
        return self.client_token(p, "RunInstances", make)

    def DescribeInstances(self, p):
        self.check_region(p)
        ids = None
        if "InstanceIds" in p:
            try:
                ids = json.loads(p["InstanceIds"])
                assert isinstance(ids, list)
            except (ValueError, AssertionError):
                raise ApiError(400, "InvalidInstanceIds.Malformed", "InstanceIds is a JSON array")
        found = []
        for i in self.s.instances.values():
            status = self.s.instance_view(i)
            if status is None or (ids is not None and i["id"] not in ids) or not tag_filter(p, i["tags"]):
                continue
            running = status in ("Running", "Stopping")
            found.append({
                "InstanceId": i["id"], "InstanceName": i["name"], "Status": status,
                "InstanceType": i["type"], "ImageId": i["image"], "RegionId": REGION,
                "PublicIpAddress": {"IpAddress": [i["public_ip"]] if running else []},
                "EipAddress": {"IpAddress": "", "AllocationId": ""},
                "SecurityGroupIds": {"SecurityGroupId": [i["group"]]},
                "VpcAttributes": {"VpcId": i["vpc"], "VSwitchId": i["vswitch"],
                                  "PrivateIpAddress": {"IpAddress": ["172.16.0.10"]}},
                "Tags": ecs_tags(i["tags"]),
            })
        items, meta = page(p, found)
        return dict(meta, Instances={"Instance": items})

    def DeleteInstances(self, p):
        self.check_region(p)
        ids = [p[k] for k in sorted(p) if k.startswith("InstanceId.")]
        if not ids:
            raise ApiError(400, "MissingParameter", "InstanceId.N")
        for iid in ids:
            i = self.s.instances.get(iid)
            if i is None or self.s.instance_view(i) is None:
                raise ApiError(404, "InvalidInstanceId.NotFound", "The specified InstanceId does not exist.")
            status = self.s.instance_view(i)
            if status == "Running" and p.get("Force") != "true":
                raise ApiError(403, "IncorrectInstanceStatus", "The current status of the resource does not support this operation.")
        for iid in ids:
            i = self.s.instances[iid]
            if i["released"] is None:
                i["released"] = time.time() + RELEASING
        return {}

    def DescribeSecurityGroups(self, p):
        self.check_region(p)
        found = [{"SecurityGroupId": g["id"], "SecurityGroupName": g["name"], "VpcId": g["vpc"],
                  "Tags": ecs_tags(g["tags"])}
                 for g in self.s.groups.values() if tag_filter(p, g["tags"])
                 and p.get("SecurityGroupId", g["id"]) == g["id"]]
        items, meta = page(p, found)
        return dict(meta, SecurityGroups={"SecurityGroup": items})

    def DeleteSecurityGroup(self, p):
        self.check_region(p)
        (gid,) = need(p, "SecurityGroupId")
        if gid not in self.s.groups:
            raise ApiError(404, "InvalidSecurityGroupId.NotFound", "The specified SecurityGroupId does not exist.")
        if self.s.in_use_by_instances("group", gid):
            raise ApiError(403, "DependencyViolation", "There is still instance(s) in the specified security group.")
        del self.s.groups[gid]
        return {}

    # VPC
    def CreateVpc(self, p):
        self.check_region(p)
        cidr = p.get("CidrBlock", "172.16.0.0/12")
        try:
            ipaddress.ip_network(cidr)
        except ValueError:
            raise ApiError(400, "InvalidCidrBlock.Malformed", "bad CidrBlock")
        tags = tags_of(p)

        def make():
            vid = self.s.new_id("vpc")
            self.s.vpcs[vid] = {"id": vid, "cidr": cidr, "tags": tags, "created": time.time(),
                                "name": p.get("VpcName", "")}
            return {"VpcId": vid, "VRouterId": "vrt-" + vid[4:], "RouteTableId": "vtb-" + vid[4:],
                    "ResourceGroupId": "rg-default"}
        return self.client_token(p, "CreateVpc", make)

    def DescribeVpcs(self, p):
        self.check_region(p)
        found = [{"VpcId": v["id"], "VpcName": v["name"], "CidrBlock": v["cidr"],
                  "Status": self.s.vpc_status(v), "RegionId": REGION, "Tags": vpc_tags(v["tags"])}
                 for v in self.s.vpcs.values()
                 if tag_filter(p, v["tags"]) and p.get("VpcId", v["id"]) == v["id"]]
        items, meta = page(p, found)
        return dict(meta, Vpcs={"Vpc": items})

    def CreateVSwitch(self, p):
        self.check_region(p)
        vid, zone, cidr = need(p, "VpcId", "ZoneId", "CidrBlock")
        vpc = self.s.vpcs.get(vid)
        if vpc is None:
            raise ApiError(404, "InvalidVpcId.NotFound", "The specified VpcId does not exist.")
        if self.s.vpc_status(vpc) != "Available":
            raise ApiError(400, "IncorrectVpcStatus", "The current status of VPC does not support this operation.")
        if zone not in ZONES:
            raise ApiError(400, "InvalidZoneId.NotFound", "The specified zone does not exist.")
        if not ipaddress.ip_network(cidr).subnet_of(ipaddress.ip_network(vpc["cidr"])):
            raise ApiError(400, "InvalidCidrBlock.Malformed", "the vSwitch's CIDR is outside its VPC's")
        tags = tags_of(p)

        def make():
            sid = self.s.new_id("vsw")
            self.s.vswitches[sid] = {"id": sid, "vpc": vid, "zone": zone, "cidr": cidr,
                                     "tags": tags, "created": time.time(),
                                     "name": p.get("VSwitchName", "")}
            return {"VSwitchId": sid}
        return self.client_token(p, "CreateVSwitch", make)

    def DescribeVSwitches(self, p):
        self.check_region(p)
        found = [{"VSwitchId": s["id"], "VpcId": s["vpc"], "ZoneId": s["zone"],
                  "CidrBlock": s["cidr"], "Status": self.s.vpc_status(s),
                  "Tags": vpc_tags(s["tags"])}
                 for s in self.s.vswitches.values()
                 if tag_filter(p, s["tags"]) and p.get("VSwitchId", s["id"]) == s["id"]]
        items, meta = page(p, found)
        return dict(meta, VSwitches={"VSwitch": items})

    def DeleteVSwitch(self, p):
        self.check_region(p)
        (sid,) = need(p, "VSwitchId")
        if sid not in self.s.vswitches:
            raise ApiError(404, "InvalidVSwitchId.NotFound", "The specified VSwitchId does not exist.")
        if self.s.in_use_by_instances("vswitch", sid):
            raise ApiError(400, "DependencyViolation", "Specified vSwitch has resources in use.")
        del self.s.vswitches[sid]
        return {}

    def DeleteVpc(self, p):
        self.check_region(p)
        (vid,) = need(p, "VpcId")
        if vid not in self.s.vpcs:
            raise ApiError(404, "InvalidVpcId.NotFound", "The specified VpcId does not exist.")
        if any(s["vpc"] == vid for s in self.s.vswitches.values()):
            raise ApiError(400, "DependencyViolation.VSwitch", "Specified VPC has vSwitches.")
        if any(g["vpc"] == vid for g in self.s.groups.values()):
            raise ApiError(400, "DependencyViolation.SecurityGroup", "Specified VPC has security groups.")
        del self.s.vpcs[vid]
        return {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/_state":
            s = self.server.state
            with s.lock:
                view = {
                    "vpcs": list(s.vpcs.values()), "vswitches": list(s.vswitches.values()),
                    "groups": list(s.groups.values()),
                    "instances": [dict(i, status=s.instance_view(i))
                                  for i in s.instances.values() if s.instance_view(i)],
                }
            return self.send(200, view)
        query = urllib.parse.urlsplit(self.path).query
        self.handle_call("GET", query)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode()
        if self.headers.get("Content-Type", "").split(";")[0] != "application/x-www-form-urlencoded":
            return self.send(400, {"Code": "stand-in.ContentType", "Message": "form-encoded body expected"})
        self.handle_call("POST", body)

    def handle_call(self, method, encoded):
        pairs = urllib.parse.parse_qsl(encoded, keep_blank_values=True, strict_parsing=False)
        params = dict(pairs)
        request_id = str(uuid.uuid4()).upper()
        action = params.get("Action", "")
        entry = {"action": action, "method": method,
                 "params": {k: v for k, v in params.items() if k not in COMMON}}
        try:
            if len(pairs) != len(params):
                raise ApiError(400, "stand-in.DuplicateParameter", "a parameter appears twice")
            with self.server.state.lock:
                answer = self.verify_and_run(method, params, action)
            entry["ok"] = True
            self.log(entry)
            answer["RequestId"] = request_id
            self.send(200, answer)
        except ApiError as e:
            entry.update(ok=False, code=e.code)
            self.log(entry)
            self.send(e.status, {"RequestId": request_id, "HostId": self.headers.get("Host", ""),
                                 "Code": e.code, "Message": e.message,
                                 "Recommend": "https://api.aliyun.com/troubleshoot?q=" + e.code})

    def log(self, entry):
        with self.server.log_lock:
            with open(self.server.log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")

    def verify_and_run(self, method, params, action):
        cfg = self.server.config
        for name in ("Action", "Version", "Format", "AccessKeyId", "SignatureMethod",
                     "SignatureVersion", "SignatureNonce", "Timestamp", "Signature"):
            if not params.get(name):
                raise ApiError(400, "MissingParameter", "The input parameter \"%s\" that is mandatory for processing this request is not supplied." % name)
        if params["AccessKeyId"] != cfg.key_id:
            raise ApiError(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        if params["SignatureMethod"] != "HMAC-SHA1" or params["SignatureVersion"] != "1.0":
            raise ApiError(400, "InvalidParameter.SignatureMethod", "HMAC-SHA1, version 1.0")
        if params["Format"] != "JSON":
            raise ApiError(400, "stand-in.Format", "seal asks for JSON")
        want = expected_signature(method, params, cfg.key_secret)
        if not hmac.compare_digest(want, params["Signature"]):
            raise ApiError(400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation.")
        t = parse_time(params["Timestamp"])
        if t is None or abs(time.time() - t) > 15 * 60:
            raise ApiError(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
        state = self.server.state
        if params["SignatureNonce"] in state.nonces:
            raise ApiError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        state.nonces.add(params["SignatureNonce"])
        if cfg.token is not None and params.get("SecurityToken") != cfg.token:
            raise ApiError(400, "InvalidSecurityToken.Mismatch", "Specified SecurityToken is not valid.")
        if action in ECS_ACTIONS:
            version = "2014-05-26"
        elif action in VPC_ACTIONS:
            version = "2016-04-28"
        else:
            raise ApiError(404, "InvalidAction.NotFound", "Specified api is not found, please check your url and method.")
        if params["Version"] != version:
            raise ApiError(400, "InvalidVersion", "Specified parameter Version is not valid.")
        return getattr(self.server.api, action)(params)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--key-id", required=True)
    parser.add_argument("--key-secret", required=True)
    parser.add_argument("--token")
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.config = argparse.Namespace(key_id=args.key_id, key_secret=args.key_secret,
                                       token=args.token)
    server.state = State()
    server.api = Api(server.state)
    server.log_path = args.log
    server.log_lock = threading.Lock()
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--self-test":
        # The documentation's example, so this implementation is checked too.
        p = {"Timestamp": "2016-02-23T12:46:24Z", "Format": "XML", "AccessKeyId": "testid",
             "Action": "DescribeRegions", "SignatureMethod": "HMAC-SHA1",
             "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "Version": "2014-05-26",
             "SignatureVersion": "1.0"}
        got = expected_signature("GET", p, "testsecret")
        assert got == "OLeaidS1JvxuMvnyHOwuJ+uX5qY=", got
        assert percent_encode("a b*~") == "a%20b%2A~"
        print("ok")
    else:
        main()

"""Writes the fake-cloud Heat environment used by the Heat driver tests.

Nova, Neutron, Cinder and Octavia cannot run here, so their resource types
are mapped to provider templates built from Heat's own resources: each
declares every property of the real type as a parameter of the same type
(with a default), and exposes every attribute of the real type as an
output, so Heat accepts it in the real type's place. Wait conditions are
mapped too: no VM runs to signal them. A server whose name contains
`fail-me` fails (an OS::Heat::TestResource named `nova_boot` fails), so
tests can see a failed resource's reason.

Run with the Python of scripts/heat.sh's virtualenv:
  <venv>/bin/python gen_providers.py   (rewrites the files beside it)
"""
import os

import yaml
from heat.engine import resources

resources.initialise()
ENV = resources.global_env()
HERE = os.path.dirname(os.path.abspath(__file__))

PARAM_TYPES = {
    'String': ('string', ''),
    'Integer': ('number', 0),
    'Number': ('number', 0),
    'Boolean': ('boolean', False),
    'Map': ('json', {}),
    'List': ('comma_delimited_list', []),
}

# A private address: 10.0.<a>.<b> from two random numbers.
IP = {'yaql': {
    'expression': 'concat("10.0.", str(int($.data.a) mod 250), ".", '
                  'str(int($.data.b) mod 250 + 2))',
    'data': {'a': {'get_attr': ['rand_a', 'value']},
             'b': {'get_attr': ['rand_b', 'value']}}}}
# A floating address: 172.24.<a>.<b>, drawn from 62,500 so that the few a
# cluster holds (its masters' and its load balancer's) do not collide; a
# test tells the balancer's address from the masters'.
FLOATING_IP = {'yaql': {
    'expression': 'concat("172.24.", str(int($.data.a) mod 250), ".", '
                  'str(int($.data.b) mod 250 + 2))',
    'data': {'a': {'get_attr': ['rand_a', 'value']},
             'b': {'get_attr': ['rand_b', 'value']}}}}
RANDOM = {
    'rand_a': {'type': 'OS::Heat::RandomString',
               'properties': {'length': 3,
                              'character_classes': [{'class': 'digits'}]}},
    'rand_b': {'type': 'OS::Heat::RandomString',
               'properties': {'length': 3,
                              'character_classes': [{'class': 'digits'}]}},
}
ID = {'get_param': 'OS::stack_id'}

SIGNAL = ("curl -i -X POST -H 'X-Auth-Token: fake' -H 'Content-Type: "
          "application/json' -H 'Accept: application/json' "
          "http://127.0.0.1:8004/fake-signal")

# type -> (file, extra resources, attribute values)
FAKES = {
    'OS::Nova::Server': ('fake-nova-server.yaml', dict(RANDOM, nova_boot={
        'type': 'OS::Heat::TestResource',
        'properties': {
            'value': 'booted',
            'fail': {'yaql': {
                'expression': '$.data.indexOf("fail-me") >= 0',
                'data': {'get_param': 'name'}}}}}), {
        'first_address': IP,
        'name': {'get_param': 'name'},
        'addresses': {'private': [{'addr': IP, 'version': 4,
                                   'OS-EXT-IPS:type': 'fixed'}]},
        'networks': {'private': [IP]},
        'instance_name': {'list_join': ['-', ['instance', ID]]},
    }),
    'OS::Nova::ServerGroup': ('fake-nova-servergroup.yaml', {}, {}),
    'OS::Neutron::Net': ('fake-neutron-net.yaml', {}, {
        'name': {'get_param': 'name'}, 'status': 'ACTIVE'}),
    'OS::Neutron::Subnet': ('fake-neutron-subnet.yaml', {}, {
        'name': {'get_param': 'name'}, 'cidr': {'get_param': 'cidr'},
        'network_id': {'get_param': 'network'}}),
    'OS::Neutron::Router': ('fake-neutron-router.yaml', {}, {
        'name': {'get_param': 'name'}, 'status': 'ACTIVE'}),
    'OS::Neutron::RouterInterface': ('fake-neutron-routerinterface.yaml', {}, {}),
    'OS::Neutron::Port': ('fake-neutron-port.yaml', RANDOM, {
        'name': {'get_param': 'name'}, 'status': 'ACTIVE',
        'fixed_ips': [{'ip_address': IP, 'subnet_id': 'fake-subnet'}],
        'mac_address': 'fa:16:3e:00:00:01'}),
    'OS::Neutron::SecurityGroup': ('fake-neutron-securitygroup.yaml', {}, {}),
    'OS::Neutron::SecurityGroupRule': ('fake-neutron-securitygrouprule.yaml', {}, {}),
    'OS::Neutron::FloatingIP': ('fake-neutron-floatingip.yaml', RANDOM, {
        'floating_ip_address': FLOATING_IP, 'fixed_ip_address': IP,
        'port_id': {'get_param': 'port_id'}}),
    'OS::Neutron::FloatingIPAssociation': ('fake-neutron-floatingipassociation.yaml', {}, {}),
    'OS::Cinder::Volume': ('fake-cinder-volume.yaml', {}, {
        'size': {'get_param': 'size'}, 'status': 'available'}),
    'OS::Cinder::VolumeAttachment': ('fake-cinder-volumeattachment.yaml', {}, {}),
    'OS::Octavia::LoadBalancer': ('fake-octavia-loadbalancer.yaml', RANDOM, {
        'vip_address': IP, 'vip_port_id': {'list_join': ['-', ['vip', ID]]},
        'vip_subnet_id': {'get_param': 'vip_subnet'}}),
    'OS::Octavia::Listener': ('fake-octavia-listener.yaml', {}, {}),
    'OS::Octavia::Pool': ('fake-octavia-pool.yaml', {}, {}),
    'OS::Octavia::PoolMember': ('fake-octavia-poolmember.yaml', {}, {
        'address': {'get_param': 'address'}}),
    'OS::Octavia::HealthMonitor': ('fake-octavia-healthmonitor.yaml', {}, {}),
    'OS::Heat::WaitConditionHandle': ('fake-waitconditionhandle.yaml', {}, {
        'curl_cli': SIGNAL, 'endpoint': 'http://127.0.0.1:8004/fake-signal',
        'token': 'fake', 'signal': {}}),
    'OS::Heat::WaitCondition': ('fake-waitcondition.yaml', {}, {
        'data': '{"1": "ok"}'}),
}


def empty(attr):
    t = getattr(attr.schema, 'type', None) if hasattr(attr, 'schema') else None
    return {'LIST': [], 'MAP': {}, 'INTEGER': 0, 'BOOLEAN': False}.get(t, '')


def provider(type_name, extra, values):
    cls = ENV.get_class(type_name)
    params = {}
    for name, schema in sorted(cls.properties_schema.items()):
        ptype, default = PARAM_TYPES.get(schema.type, ('string', ''))
        params[name] = {'type': ptype, 'default': default}
    outputs = {}
    for name, attr in sorted(cls.attributes_schema.items()):
        outputs[name] = {'value': values.get(name, empty(attr))}
    # What the real resource's id would be.
    outputs['OS::stack_id'] = {'value': ID}
    res = dict(extra) or {'none': {'type': 'OS::Heat::None'}}
    return {
        'heat_template_version': '2021-04-16',
        'description': 'Test stand-in for %s (no such service here).'
                       % type_name,
        'parameters': params,
        'resources': res,
        'outputs': outputs,
    }


registry = {}
for type_name, (file_name, extra, values) in sorted(FAKES.items()):
    with open(os.path.join(HERE, file_name), 'w') as f:
        f.write('# Generated by gen_providers.py: do not edit.\n')
        yaml.safe_dump(provider(type_name, extra, values), f,
                       default_flow_style=False, sort_keys=True)
    registry[type_name] = file_name

with open(os.path.join(HERE, 'fake-cloud-env.yaml'), 'w') as f:
    f.write(__doc__.replace('\n', '\n# ').join(['# ', '\n']))
    yaml.safe_dump({'resource_registry': registry}, f,
                   default_flow_style=False, sort_keys=True)

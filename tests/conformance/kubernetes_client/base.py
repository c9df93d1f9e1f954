# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.
#
# Adapted from kubernetes/e2e_test/base.py (kubernetes-client/python at the commit in SOURCE.md): the one change
# to the suites. The configuration comes from the kubeconfig of the lab the conftest started, instead of
# ~/.kube/config or a local insecure port.

import os
import unittest

from kubernetes.client.configuration import Configuration
from kubernetes.config import kube_config

KUBECONFIG_ENV = "MESHLAB_CONFORMANCE_KUBECONFIG"


def get_e2e_configuration():
    config = Configuration()
    kubeconfig = os.environ.get(KUBECONFIG_ENV)
    if not kubeconfig:
        raise unittest.SkipTest(f'No lab kubeconfig in ${KUBECONFIG_ENV}')
    kube_config.load_kube_config(config_file=kubeconfig, client_configuration=config)
    print(f'Running test against : {config.host}')
    return config

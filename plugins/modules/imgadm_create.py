#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: imgadm_create
short_description: Create a SmartOS image (manifest and file) from a VM
version_added: 0.1.0
description:
  - Does what C(imgadm create) does, in the same order and with the same error codes, idempotently and with check mode.
  - Writes C(PREFIX.imgmanifest) and C(PREFIX.zfs[.gz|.bz2|.xz]) (C(PREFIX.zvol...) for a zvol image) made from the
    VM's dataset (the first disk for kvm and bhyve VMs). Both are written under temporary names and renamed at the end,
    so they appear complete or not at all.
  - The image file streams in one pass, C(zfs send) to the compressor to the file, with its size and sha1 computed on
    the way.
  - With O(prepare_script) or O(prepare_script_content), the VM is snapshotted, the script runs in the VM (as its
    C(sdc:operator-script)), the image is made and the VM is rolled back to the snapshot, so that the VM is unchanged.
    Without one, the VM must already be prepared and stopped.
  - Whatever happens, what the task made is undone at the end, in the stock C(imgadm)'s order, also when it fails half
    way. The C(@final) snapshot made for the send is destroyed; an existing C(@final) of the VM's dataset is renamed
    C(@final-<ms>) while the image is sent, and renamed back. The pre-prepare snapshots are rolled back to and destroyed.
    A bhyve VM's quota is restored. A VM that was running is started again.
  - Idempotent by the output files. When both files exist at the output paths, the manifest there has this O(manifest)'s
    fields (and name, version, type, origin and compression), and the image file's size and sha1 match it, the task
    changes nothing. O(force) makes a new image anyway.
requirements:
  - jsonschema (Python library on the managed host), to validate the manifest
  - requests (Python library on the managed host), with O(publish)
  - cryptography (Python library on the managed host) or the openssl command, to sign with O(publish.key_file)
author:
  - smartos.imgadm developers (@smartos-imgadm)
extends_documentation_fragment:
  - smartos.imgadm._attributes
  - smartos.imgadm._attributes.ACTIONGROUP_IMGADM
  - smartos.imgadm._database
  - smartos.imgadm._imgapi
  - smartos.imgadm._binaries
attributes:
  check_mode:
    support: full
    details: Check mode reads the VM, the origin image and ZFS, validates the manifest and reports the plan (the
      manifest, the paths, the datasets and the commands); it snapshots, starts, stops and writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Without O(force), a second run finds the files of the first (see the description) and changes nothing.
options:
  vm_uuid:
    description:
      - The VM to make the image from.
    type: str
    required: true
  manifest:
    description:
      - Fields of the new image's manifest, such as V(name), V(version), V(description), V(homepage), V(tags),
        V(requirements). V(name) and V(version) are required; every field is validated as the stock C(imgadm create)
        validates it (error code V(ManifestValidation) naming the field).
      - Values are used as they are given, with their YAML types; there is no JSON guessing as in
        C(imgadm create name=value). Quote a version such as V("1.10"), or YAML makes it the number 1.1, which
        is not a valid version.
      - V(v) and V(uuid) may be given; by default V(v) is 2 and V(uuid) a new random UUID.
      - When the VM was made from an image that is installed, these fields come from it unless they are given here
        (also without O(incremental)) - V(type), V(os), V(requirements), V(users), V(billing_tags), V(traits),
        V(generate_passwords), V(inherited_directories), V(nic_driver), V(disk_driver), V(cpu_type), V(image_size).
      - Then, unless given in V(requirements) here - V(requirements.min_platform) is set to the current platform
        (C(sysinfo)'s C(SDC Version) and C(Live Image)) for joyent and joyent-minimal VMs;
        V(requirements.brand) to the VM's brand for bhyve, lx and kvm VMs; V(requirements.bootrom) to the VM's
        C(bootrom) for bhyve VMs that have one.
      - V(origin) is set with O(incremental), V(files) once the file is written.
    type: dict
    default: {}
  output:
    description:
      - Where the two files are written, an absolute path on the managed host.
      - An existing directory - the files are V(DIR/NAME-VERSION.imgmanifest) and V(DIR/NAME-VERSION.zfs[.EXT]), with
        NAME and VERSION made safe for a path as the stock C(imgadm) does (characters other than letters, digits,
        V(_), V(.), V(-) and spaces removed, lower case, runs of spaces and dashes made one dash).
      - Anything else is a path prefix - V(OUTPUT.imgmanifest) and V(OUTPUT.zfs[.EXT]); its directory must exist.
      - Required unless O(publish) is given. With O(publish) alone, the files are written under a temporary prefix
        in C(/var/tmp) and removed once published, and every run makes (and publishes) a new image; give O(output)
        to keep the files and make the task idempotent.
    type: path
  compression:
    description:
      - How the image file is compressed, with C(gzip), C(bzip2) or C(xz) C(-cfq) (see O(gzip_path) and the others).
    type: str
    choices: [none, gzip, bzip2, xz]
    default: none
  incremental:
    description:
      - Make an incremental image, a C(zfs send -i) from the origin image's C(@final) snapshot, with V(origin) set in
        the manifest.
      - The VM must have been made from an installed image (error code V(VmHasNoOrigin)) whose C(@final) exists
        (V(OriginHasNoFinalSnapshot)).
    type: bool
    default: false
  max_origin_depth:
    description:
      - Refuse (error code V(MaxOriginDepth)) when the chain of origin images of the new image would be longer than
        this. As in the stock C(imgadm), the chain counted is the VM's image and its origins, only when that image is
        itself incremental, and also without O(incremental).
      - At least 2.
    type: int
  prepare_script:
    description:
      - Path on the managed host of a prepare-image script to run in the VM before imaging it.
      - The script must follow the stock C(imgadm)'s contract - set C(prepare-image:state) to V(running) with
        C(mdata-put), then to V(success), or to V(error) with the details in C(prepare-image:error), then shut the
        VM down. Each of these three stages has O(prepare_timeout) seconds.
      - Mutually exclusive with O(prepare_script_content).
    type: path
  prepare_script_content:
    description:
      - The prepare-image script itself, as text (see O(prepare_script)).
    type: str
  prepare_timeout:
    description:
      - Seconds allowed for each stage of the prepare-image script - the VM booted until the script says V(running),
        until it says V(success) or V(error), and until the VM has stopped.
      - A stage that times out fails the task, with error code V(PrepareImageDidNotRun) for the first and
        V(PrepareImageError) for the others. A VM that stops before the script signals fails at once.
    type: float
    default: 300
  force:
    description:
      - Make a new image even when the output files already hold this one; they are replaced.
    type: bool
    default: false
  vmadm_path:
    description:
      - Path of the C(vmadm) command. When it does not exist, C(vmadm) is looked up on E(PATH).
    type: path
    default: /usr/sbin/vmadm
  publish:
    description:
      - Publish the image to an IMGAPI once it is made (or found made), as C(imgadm create -p) and
        M(smartos.imgadm.imgadm_publish) do. Publishing is idempotent in its own right (see
        M(smartos.imgadm.imgadm_publish)) - an image the server has already, with the same file, is left alone.
      - In check mode, the image is only published (checked) when its files exist already; otherwise the plan says
        it would be.
    type: dict
    suboptions:
      url:
        description:
          - The IMGAPI to publish to, for example V(https://images.example.com).
          - A V(?channel=NAME) in it selects the channel, as in an image source URL (see O(publish.channel)).
        type: str
        required: true
      mode:
        description:
          - V(import) publishes with C(AdminImportImage), as C(imgadm publish) does; the image keeps its uuid (and
            C(published_at) if the manifest has one). IMGAPI allows it to operators only, and in public and private
            mode it sets the owner to V(00000000-0000-0000-0000-000000000000).
          - V(create) publishes with C(CreateImage), as C(sdc-imgadm create) and CloudAPI do; the server gives the image a
            new uuid, and O(publish.owner) is required. C(uuid), C(published_at), C(urn) and the server-managed fields of the
            manifest are not sent.
        type: str
        choices: [import, create]
        default: import
      owner:
        description:
          - The uuid of the account the image belongs to. Required with O(publish.mode=create) unless the manifest has an owner.
          - With O(publish.mode=import) it replaces the manifest's owner; by default the manifest's owner is sent.
        type: str
      channel:
        description:
          - The channel of a server that has channels to publish into (C(?channel=NAME) on every request).
            Without it the server's default channel is used.
        type: str
      user:
        description:
          - The IMGAPI user name that signs the requests (HTTP Signature auth, the C(keyId)). The server checks the
            signature against that user's public keys.
          - Required with O(publish.key_file) or O(publish.ssh_agent).
        type: str
      key_file:
        description:
          - A private RSA key on the managed host to sign requests with, in PEM (PKCS#1 or PKCS#8) or OpenSSH format.
          - Signs with the C(cryptography) Python library when it is installed, otherwise with the C(openssl) command
            (O(publish.openssl_path)); an encrypted OpenSSH-format key needs C(cryptography) with C(bcrypt).
          - IMGAPI accepts RSA signatures only (C(rsa-sha256), C(rsa-sha1)); other key types are refused with a clear error.
          - Mutually exclusive with O(publish.ssh_agent) and O(publish.key_id).
        type: path
      key_passphrase:
        description:
          - The passphrase of an encrypted O(publish.key_file). An encrypted key without it is an error naming the option.
          - It is passed to C(openssl) in its environment, never on a command line or in a file.
        type: str
      ssh_agent:
        description:
          - Sign with an RSA key held by the C(ssh-agent) that E(SSH_AUTH_SOCK) points to in the module's environment
            (a forwarded agent, or one named with the task's C(environment)). Without O(publish.key_id), the agent's first RSA key.
        type: bool
        default: false
      key_id:
        description:
          - The fingerprint of the agent key to sign with, as C(ssh-add -l) prints it (V(SHA256:...)) or in the MD5
            form (V(aa:bb:...:ff), with or without V(MD5:)). Implies O(publish.ssh_agent=true).
        type: str
      openssl_path:
        description:
          - The C(openssl) command used to sign with O(publish.key_file) when the C(cryptography) library is missing;
            a name is looked up on E(PATH).
        type: path
        default: openssl
      url_username:
        description:
          - HTTP Basic user name, for an IMGAPI behind a proxy that checks HTTP Basic auth. IMGAPI itself rejects
            Basic auth. Cannot be used with HTTP Signature auth (O(publish.user)).
        type: str
      url_password:
        description:
          - HTTP Basic password, with O(publish.url_username).
        type: str
      validate_certs:
        description:
          - Verify the TLS certificate of an HTTPS O(publish.url).
        type: bool
        default: true
      timeout:
        description:
          - Seconds to wait for the server to connect or to send the next piece of an answer.
        type: float
        default: 30.0
      retries:
        description:
          - How many times a read (GET) or a C(DELETE) is retried after a connection failure, a timeout, HTTP 408, 429
            or 5xx, with exponential backoff that honours C(Retry-After). Writes (C(POST), C(PUT)) are never retried.
        type: int
        default: 3
notes:
  - The image files are written by the module on the managed host; fetch them, or publish them to an image server,
    in later tasks.
  - The stock C(imgadm create) leaves an existing C(@final) of the VM's dataset renamed as C(@final-<ms>); this module
    renames it back at the end.
  - A VM that is not stopped is only an error (V(VmNotStopped)) when there is something to do - a second run whose
    files are already there succeeds even when the VM has been started since.
  - C(sysinfo) is only run when V(requirements.min_platform) is needed (joyent and joyent-minimal VMs); the stock
    C(imgadm) runs it for every brand other than kvm and bhyve.
  - An interrupted run (the host rebooted, say) can leave C(@imgadm-create-pre-prepare) snapshots; the next run fails
    with a message naming them rather than guessing. Roll the VM back to them (C(zfs rollback -r)) and destroy them.
seealso:
  - module: smartos.imgadm.imgadm_image
  - module: smartos.imgadm.imgadm_publish
'''

EXAMPLES = r'''
- name: Image a prepared and stopped VM
  smartos.imgadm.imgadm_create:
    vm_uuid: 5f7a53e9-fc4d-d94b-9205-9ff110742aaf
    manifest:
      name: my-base
      version: "1.0.0"
      description: Our base image
    output: /var/tmp/images
    compression: gzip
  register: image

- name: Let a prepare-image script prepare the VM, and roll it back afterwards
  smartos.imgadm.imgadm_create:
    vm_uuid: 5f7a53e9-fc4d-d94b-9205-9ff110742aaf
    manifest:
      name: my-app
      version: "2.3.1"
    output: /var/tmp/images/my-app-2.3.1
    prepare_script_content: |
      #!/usr/bin/bash
      mdata-put prepare-image:state running
      rm -f /etc/ssh/ssh_host_*key* && mdata-put prepare-image:state success \
        || { mdata-put prepare-image:state error; mdata-put prepare-image:error "cleanup failed"; }
      shutdown -y -g0 -i5
    incremental: true
    compression: xz

- name: Make an image and publish it
  smartos.imgadm.imgadm_create:
    vm_uuid: 5f7a53e9-fc4d-d94b-9205-9ff110742aaf
    manifest:
      name: my-base
      version: "1.0.1"
    output: /var/tmp/images
    compression: gzip
    publish:
      url: https://images.example.com
      user: admin
      key_file: /root/.ssh/id_rsa

- name: Install the new image on the same host
  smartos.imgadm.imgadm_image:
    manifest: "{{ image.manifest_path }}"
    file: "{{ image.file_path }}"
'''

RETURN = r'''
manifest:
  description: The manifest of the image, as written (in check mode, as planned, without V(files)). When the files
    existed already, the manifest found there.
  returned: success
  type: dict
  sample:
    v: 2
    uuid: 0d7c3f6e-0000-4000-8000-000000000123
    name: my-base
    version: 1.0.0
    type: zone-dataset
    os: smartos
    requirements: {min_platform: {"7.0": 20260101T000000Z}}
    files: [{size: 1234567, compression: gzip, sha1: 97a1d8a2c4a3c4f1d9dbd5c2a0e4f0a1b2c3d4e5}]
manifest_path:
  description: The manifest file.
  returned: success
  type: str
  sample: /var/tmp/images/my-base-1.0.0.imgmanifest
file_path:
  description: The image file.
  returned: success
  type: str
  sample: /var/tmp/images/my-base-1.0.0.zfs.gz
size:
  description: The image file's size in bytes (null in check mode).
  returned: success
  type: int
sha1:
  description: The image file's sha1 (null in check mode).
  returned: success
  type: str
compression:
  description: The image file's compression.
  returned: success
  type: str
origin:
  description: The image the VM was made from, when it is installed (the new image's origin with O(incremental)).
  returned: success
  type: str
inherited:
  description: The manifest fields copied from the origin image.
  returned: success
  type: list
  elements: str
vm:
  description: The VM, as it was found.
  returned: always, once the VM was read
  type: dict
  contains:
    uuid: {description: Its uuid., type: str}
    brand: {description: Its brand., type: str}
    state: {description: Its state before the task., type: str}
datasets:
  description: The datasets the task works on.
  returned: success
  type: dict
  contains:
    image: {description: The dataset the image is made of (the first disk for kvm and bhyve)., type: str}
    prepare:
      description: The datasets snapshotted before the prepare-image script (the zone root and every disk).
      type: list
      elements: str
prepare_stages:
  description: Seconds spent in each prepare-image stage (V(running), V(complete), V(stopped)).
  returned: when a prepare-image script ran
  type: dict
created:
  description: Whether this run made the image's files (in check mode, would make them); V(false) when the files at
    O(output) were this image already (see O(force)).
  returned: success
  type: bool
published:
  description: With O(publish), what publishing did (see M(smartos.imgadm.imgadm_publish)'s RV(smartos.imgadm.imgadm_publish#module:published)).
  returned: when O(publish) is given and the image was published (or checked)
  type: dict
timings:
  description: Seconds spent in each phase - V(inspect), V(prepare), V(send), V(write), V(cleanup), V(publish).
  returned: always
  type: dict
  sample: {inspect: 0.412, send: 12.87, write: 0.002, cleanup: 0.31}
actions:
  description: What the task did (or would do in check mode), one line each, cleanup included.
  returned: always
  type: list
  elements: str
error_code:
  description: On failure, the stock C(imgadm)'s error code - V(VmNotFound), V(VmNotStopped), V(VmHasNoOrigin),
    V(OriginHasNoFinalSnapshot), V(MaxOriginDepth), V(ManifestValidation), V(PrepareImageDidNotRun),
    V(PrepareImageError), V(FileSystem), V(InternalError), V(MultiError) (the run and its cleanup both failed, see
    RV(errors)) - or this collection's own (V(CommandTimeout), V(Usage), V(InvalidUUID)).
  returned: failure
  type: str
errors:
  description: With error code V(MultiError), each error.
  returned: failure, with V(MultiError)
  type: list
  elements: dict
field:
  description: On a bad option, the option it is about.
  returned: failure, for bad input
  type: str
'''

from ansible_collections.smartos.imgadm.plugins.module_utils._common import (
    BINARY_ARGS,
    DATABASE_ARGS,
    IMGAPI_ARGS,
    argument_spec,
    run_module,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._creator import run_create
from ansible_collections.smartos.imgadm.plugins.module_utils._publisher import PUBLISH_ARGS


def main():
    spec = argument_spec(
        DATABASE_ARGS,
        IMGAPI_ARGS,
        BINARY_ARGS,
        vm_uuid=dict(type='str', required=True),
        manifest=dict(type='dict', default={}),
        output=dict(type='path'),
        compression=dict(type='str', choices=['none', 'gzip', 'bzip2', 'xz'], default='none'),
        incremental=dict(type='bool', default=False),
        max_origin_depth=dict(type='int'),
        prepare_script=dict(type='path'),
        prepare_script_content=dict(type='str'),
        prepare_timeout=dict(type='float', default=300.0),
        force=dict(type='bool', default=False),
        vmadm_path=dict(type='path', default='/usr/sbin/vmadm'),
        publish=dict(type='dict', options=PUBLISH_ARGS),
    )
    run_module(spec, run_create, mutually_exclusive=[('prepare_script', 'prepare_script_content')])


if __name__ == '__main__':
    main()

# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""The typed error tree of the collection.

Library code raises these; exactly one place (``_common.run_module``) turns
them into ``fail_json``. Each class carries the error code of the reference
imgadm (``ImageNotInstalled``, ``SourcePing``...), returned to the user as
``error_code``, and keyword details that are returned as extra result keys.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ImgadmError(Exception):
    """Base of every error the collection raises on purpose."""

    code = 'InternalError'
    # exit status of the reference imgadm for this error
    exit_status = 1

    def __init__(self, message, code=None, **details):
        super(ImgadmError, self).__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def __str__(self):
        return self.message

    def fail_kwargs(self):
        """Keyword arguments for ``module.fail_json``."""
        result = dict(self.details)
        result['msg'] = self.message
        result['error_code'] = self.code
        return result


class UsageError(ImgadmError):
    """Bad input from the user. ``field`` names the offending option."""

    code = 'Usage'

    def __init__(self, message, field=None, **details):
        if field is not None:
            details['field'] = field
        super(UsageError, self).__init__(message, **details)


class InvalidUUIDError(UsageError):
    code = 'InvalidUUID'


class ConfigError(ImgadmError):
    """``imgadm.conf`` cannot be read or is invalid."""

    code = 'ConfigError'


class MissingLibraryError(ImgadmError):
    """A Python library the operation needs is not installed."""

    code = 'MissingLibrary'

    def __init__(self, library, exception=None, reason=None):
        message = 'Failed to import the required Python library (%s)' % library
        if reason:
            message += ' %s' % reason
        super(MissingLibraryError, self).__init__(message, library=library)
        self.library = library
        self.import_traceback = exception


class ManifestError(ImgadmError):
    """Base for manifest problems."""

    code = 'ManifestValidation'


class InvalidManifestError(ManifestError):
    """The manifest cannot be parsed or upgraded at all."""

    code = 'InvalidManifest'


class ManifestValidationError(ManifestError):
    """The manifest parsed but breaks one or more rules.

    ``errors`` is a list of ``{'field': ..., 'code': ..., 'message': ...}``.
    """

    code = 'ManifestValidation'

    def __init__(self, errors, uuid=None):
        self.errors = list(errors)
        fields = ', '.join(
            '%s (%s)' % (e['field'], e['message']) if e.get('message') else e['field']
            for e in self.errors)
        message = 'invalid manifest: %s' % fields
        if uuid:
            message = 'image %s: %s' % (uuid, message)
        super(ManifestValidationError, self).__init__(message, errors=self.errors)


class PlatformError(ManifestError):
    code = 'MinPlatform'


class ZfsError(ImgadmError):
    """A zfs/zpool command (or libzfs_core call) failed."""

    code = 'InternalError'

    def __init__(self, message, cmd=None, rc=None, stderr=None, **details):
        if cmd is not None:
            details['cmd'] = cmd
        if rc is not None:
            details['rc'] = rc
        if stderr is not None:
            details['stderr'] = stderr
        super(ZfsError, self).__init__(message, **details)
        self.cmd = cmd
        self.rc = rc
        self.stderr = stderr


class DatasetNotFoundError(ZfsError):
    code = 'DatasetNotFound'


class CommandError(ImgadmError):
    """A helper command (sysinfo, zoneadm, vmadm, a decompressor) failed."""

    code = 'InternalError'


class LockError(ImgadmError):
    code = 'LockTimeout'


class ImgapiError(ImgadmError):
    """An IMGAPI request failed.

    ``code`` is the server's ``{code}`` (``ResourceNotFound``...) when it sent
    one, ``status`` the HTTP status (None for a transport failure).
    """

    code = 'APIError'

    def __init__(self, message, url=None, status=None, code=None, body=None, **details):
        if url is not None:
            details['url'] = url
        if status is not None:
            details['status'] = status
        super(ImgapiError, self).__init__(message, code=code, **details)
        self.url = url
        self.status = status
        self.body = body


class ImgapiNotFoundError(ImgapiError):
    code = 'ResourceNotFound'


class ImgapiConnectionError(ImgapiError):
    """No HTTP answer: refused, reset, timed out, truncated."""

    code = 'ClientError'


class SourcePingError(ImgadmError):
    code = 'SourcePing'


class NoSourcesError(ImgadmError):
    code = 'NoSources'

    def __init__(self, message='imgadm has no configured sources', **details):
        super(NoSourcesError, self).__init__(message, **details)


class DownloadError(ImgadmError):
    code = 'DownloadError'


class UploadError(ImgadmError):
    code = 'UploadError'


class ImageNotFoundError(ImgadmError):
    code = 'ImageNotFound'


class ActiveImageNotFoundError(ImgadmError):
    code = 'ActiveImageNotFound'


class ImageNotActiveError(ImgadmError):
    code = 'ImageNotActive'


class ImageNotInstalledError(ImgadmError):
    code = 'ImageNotInstalled'
    exit_status = 3


class OriginNotInstalledError(ImgadmError):
    code = 'OriginNotInstalled'
    exit_status = 3


class ImageHasDependentClonesError(ImgadmError):
    code = 'ImageHasDependentClones'


class UnexpectedNumberOfSnapshotsError(ImgadmError):
    code = 'UnexpectedNumberOfSnapshots'


class UncompressionError(ImgadmError):
    code = 'UncompressionError'


class ImageMissingOriginalSnapshotError(ImgadmError):
    code = 'ImageMissingOriginalSnapshot'


class NotAnImageError(ImgadmError):
    """``POOL/UUID`` exists but is not an image by the list heuristic (a VM's dataset, an ignored one...).

    The reference has no such check: its ``delete`` destroys whatever ``POOL/UUID`` is.
    """

    code = 'NotAnImage'


class PoolNotFoundError(ImgadmError):
    code = 'PoolNotFound'


class CommandTimeoutError(CommandError):
    """An external command ran past its deadline (``command_timeout``) and was killed."""

    code = 'CommandTimeout'


class OriginSnapshotMismatchError(ImgadmError):
    """The installed origin's @final is not the snapshot an incremental image was sent from."""

    code = 'OriginSnapshotMismatch'


__all__ = (
    'ImgadmError', 'UsageError', 'InvalidUUIDError', 'ConfigError', 'MissingLibraryError',
    'ManifestError', 'InvalidManifestError', 'ManifestValidationError', 'PlatformError',
    'ZfsError', 'DatasetNotFoundError', 'CommandError', 'LockError',
    'ImgapiError', 'ImgapiNotFoundError', 'ImgapiConnectionError', 'SourcePingError',
    'NoSourcesError', 'DownloadError', 'UploadError', 'ImageNotFoundError',
    'ActiveImageNotFoundError', 'ImageNotActiveError', 'ImageNotInstalledError',
    'OriginNotInstalledError', 'ImageHasDependentClonesError',
    'UnexpectedNumberOfSnapshotsError', 'UncompressionError', 'ImageMissingOriginalSnapshotError',
    'OriginSnapshotMismatchError', 'NotAnImageError', 'PoolNotFoundError', 'CommandTimeoutError',
)


# ---- imgadm_create (the reference's codes for ``imgadm create``)

class VmNotFoundError(ImgadmError):
    code = 'VmNotFound'


class VmNotStoppedError(ImgadmError):
    code = 'VmNotStopped'


class VmHasNoOriginError(ImgadmError):
    code = 'VmHasNoOrigin'


class OriginHasNoFinalSnapshotError(ImgadmError):
    code = 'OriginHasNoFinalSnapshot'


class MaxOriginDepthError(ImgadmError):
    code = 'MaxOriginDepth'


class PrepareImageError(ImgadmError):
    code = 'PrepareImageError'


class PrepareImageDidNotRunError(ImgadmError):
    code = 'PrepareImageDidNotRun'


class FileSystemError(ImgadmError):
    code = 'FileSystem'


class MultiError(ImgadmError):
    """Several errors at once (a failed step and a failed cleanup): ``errors`` lists them."""

    code = 'MultiError'

    def __init__(self, errors):
        self.errors = list(errors)
        lines = ['multiple (%d) errors' % len(self.errors)]
        for e in self.errors:
            lines.append('    error (%s): %s' % (getattr(e, 'code', 'InternalError'), e))
        super(MultiError, self).__init__('\n'.join(lines), errors=[
            {'error_code': getattr(e, 'code', 'InternalError'), 'msg': str(e)} for e in self.errors])


__all__ += (
    'VmNotFoundError', 'VmNotStoppedError', 'VmHasNoOriginError', 'OriginHasNoFinalSnapshotError',
    'MaxOriginDepthError', 'PrepareImageError', 'PrepareImageDidNotRunError', 'FileSystemError', 'MultiError',
)


# ---- imgadm_publish (HTTP Signature auth, publishing to an IMGAPI)

class ImgapiUnauthorizedError(ImgapiError):
    """HTTP 401 from an IMGAPI: no, bad or unknown credentials (the server's message is kept)."""

    code = 'UnauthorizedError'


class ImageUuidAlreadyExistsError(ImgadmError):
    """The uuid to publish is taken on the server by an image that is not this one."""

    code = 'ImageUuidAlreadyExists'


class SigningError(ImgadmError):
    """A request cannot be signed: unreadable, encrypted or non-RSA key, ssh-agent failure, openssl failure."""

    code = 'SigningError'


__all__ += ('ImgapiUnauthorizedError', 'ImageUuidAlreadyExistsError', 'SigningError')

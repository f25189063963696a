"""Blob chores for the Rust suites, through the official azure-storage-blob package.

    azurite.py container ENDPOINT NAME        creates container NAME (if missing) and prints
                                              its URL with a container SAS (read, add,
                                              create, write, delete, list; valid 1 day)
    azurite.py put CONTAINER_SAS_URL BLOB FILE  uploads FILE as BLOB
    azurite.py get CONTAINER_SAS_URL BLOB FILE  downloads BLOB into FILE

ENDPOINT is Azurite's account URL (http://127.0.0.1:PORT/devstoreaccount1); the account key
is Azurite's documented development key (AZURITE_ACCOUNT_KEY overrides it).
"""

import datetime
import os
import sys

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import (
    BlobServiceClient,
    ContainerClient,
    ContainerSasPermissions,
    generate_container_sas,
)

ACCOUNT = "devstoreaccount1"
DEV_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def container(endpoint, name):
    key = os.environ.get("AZURITE_ACCOUNT_KEY", DEV_KEY)
    service = BlobServiceClient(account_url=endpoint, credential={"account_name": ACCOUNT, "account_key": key})
    try:
        service.create_container(name)
    except ResourceExistsError:
        pass
    sas = generate_container_sas(
        account_name=ACCOUNT,
        container_name=name,
        account_key=key,
        permission=ContainerSasPermissions(read=True, add=True, create=True, write=True, delete=True, list=True),
        expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1),
    )
    print(f"{endpoint}/{name}?{sas}")


def main(argv):
    if len(argv) == 3 and argv[0] == "container":
        container(argv[1], argv[2])
    elif len(argv) == 4 and argv[0] == "put":
        with open(argv[3], "rb") as f:
            ContainerClient.from_container_url(argv[1]).upload_blob(argv[2], f, overwrite=True, max_concurrency=2)
    elif len(argv) == 4 and argv[0] == "get":
        with open(argv[3], "wb") as f:
            ContainerClient.from_container_url(argv[1]).download_blob(argv[2], max_concurrency=2).readinto(f)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])

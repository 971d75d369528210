"""The organisation: regions, departments, users, roles, delegations and external parties.

Import from here; the submodules are organised by concept (``service`` for regions,
departments, users and memberships; ``delegation``; ``parties`` for persons and
organisations; ``systems`` for connected systems; ``importer`` for the xlsx workbook).
Models live in ``xietong.kernel.org.models`` and are loaded through the kernel plugin.
"""

from __future__ import annotations

from xietong.kernel.org.delegation import (
    active_delegates_for,
    add_delegation,
    list_delegations,
    revoke_delegation,
)
from xietong.kernel.org.identity import (
    is_valid_id_number,
    mask_id_number,
    mask_mobile,
    mask_name,
    normalize_id_number,
    normalize_mobile,
    normalize_uscc,
)
from xietong.kernel.org.importer import ImportReport, RowError, export_org_xlsx, import_org_xlsx
from xietong.kernel.org.parties import (
    find_person,
    get_person,
    register_organization,
    register_person,
    reveal_person_id_number,
)
from xietong.kernel.org.scopes import actor_for_system, actor_for_user, department_subtree
from xietong.kernel.org.service import (
    add_user,
    create_department,
    create_region,
    deactivate_user,
    get_user_by_username,
    grant_membership,
    list_departments,
    list_regions,
    list_users,
    revoke_membership,
    set_password,
)
from xietong.kernel.org.systems import (
    authenticate_api_key,
    deactivate_system,
    list_systems,
    register_connected_system,
    rotate_system_key,
)
from xietong.kernel.org.views import (
    Delegate,
    DelegationView,
    DepartmentView,
    IssuedKey,
    MembershipView,
    OrganizationView,
    PersonView,
    RegionView,
    SystemView,
    UserView,
)
from xietong.kernel.org.workbook import org_template_xlsx

__all__ = [
    "Delegate",
    "DelegationView",
    "DepartmentView",
    "ImportReport",
    "IssuedKey",
    "MembershipView",
    "OrganizationView",
    "PersonView",
    "RegionView",
    "RowError",
    "SystemView",
    "UserView",
    "active_delegates_for",
    "actor_for_system",
    "actor_for_user",
    "add_delegation",
    "add_user",
    "authenticate_api_key",
    "create_department",
    "create_region",
    "deactivate_system",
    "deactivate_user",
    "department_subtree",
    "export_org_xlsx",
    "find_person",
    "get_person",
    "get_user_by_username",
    "grant_membership",
    "import_org_xlsx",
    "is_valid_id_number",
    "list_delegations",
    "list_departments",
    "list_regions",
    "list_systems",
    "list_users",
    "mask_id_number",
    "mask_mobile",
    "mask_name",
    "normalize_id_number",
    "normalize_mobile",
    "normalize_uscc",
    "org_template_xlsx",
    "register_connected_system",
    "register_organization",
    "register_person",
    "reveal_person_id_number",
    "revoke_delegation",
    "revoke_membership",
    "rotate_system_key",
    "set_password",
]

/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The bus vocabulary of org.packetscope.Guarder1 (dbus/org.packetscope.Guarder1.xml), spelled
 * once for the daemon and the client, with the bounds the daemon enforces so that the client can
 * refuse a request locally with the same limit.
 */

#define PS_BUS_NAME "org.packetscope.Guarder1"

#define PS_OBJECT_ROOT "/org/packetscope/Guarder1"
#define PS_OBJECT_LINKS PS_OBJECT_ROOT "/link"
#define PS_OBJECT_CONNECTIONS PS_OBJECT_ROOT "/connections"
#define PS_OBJECT_FILTERS PS_OBJECT_ROOT "/filters"
#define PS_OBJECT_TRANSACTIONS PS_OBJECT_FILTERS "/transaction"
#define PS_OBJECT_AI PS_OBJECT_ROOT "/ai"
#define PS_OBJECT_AI_JOBS PS_OBJECT_AI "/jobs"
#define PS_OBJECT_HEALTH PS_OBJECT_ROOT "/health"
#define PS_OBJECT_BANS PS_OBJECT_ROOT "/bans"

#define PS_IFACE_MANAGER PS_BUS_NAME ".Manager"
#define PS_IFACE_LINK PS_BUS_NAME ".Link"
#define PS_IFACE_CONNECTIONS PS_BUS_NAME ".Connections"
#define PS_IFACE_FILTERS PS_BUS_NAME ".Filters"
#define PS_IFACE_FILTER PS_BUS_NAME ".Filter"
#define PS_IFACE_TRANSACTION PS_BUS_NAME ".Transaction"
#define PS_IFACE_AI PS_BUS_NAME ".AI"
#define PS_IFACE_AI_JOB PS_BUS_NAME ".AIJob"
#define PS_IFACE_HEALTH PS_BUS_NAME ".Health"
#define PS_IFACE_BANS PS_BUS_NAME ".Bans"
#define PS_IFACE_BAN PS_BUS_NAME ".Ban"
#define PS_IFACE_PROPERTIES "org.freedesktop.DBus.Properties"

#define PS_ERROR_NO_SUCH_INTERFACE PS_BUS_NAME ".Error.NoSuchInterface"
#define PS_ERROR_NO_SUCH_LINK PS_BUS_NAME ".Error.NoSuchLink"
#define PS_ERROR_ALREADY_GUARDED PS_BUS_NAME ".Error.AlreadyGuarded"
#define PS_ERROR_ATTACH_FAILED PS_BUS_NAME ".Error.AttachFailed"
#define PS_ERROR_LIMIT_EXCEEDED PS_BUS_NAME ".Error.LimitExceeded"
#define PS_ERROR_INVALID_FILTER PS_BUS_NAME ".Error.InvalidFilter"
#define PS_ERROR_NO_SUCH_FILTER PS_BUS_NAME ".Error.NoSuchFilter"
#define PS_ERROR_LOCKOUT PS_BUS_NAME ".Error.WouldLockOut"
#define PS_ERROR_FILTER_FAILED PS_BUS_NAME ".Error.FilterUpdateFailed"
#define PS_ERROR_TRANSACTION_PENDING PS_BUS_NAME ".Error.TransactionPending"
#define PS_ERROR_CHANGE_IN_PROGRESS PS_BUS_NAME ".Error.ChangeInProgress"
#define PS_ERROR_NO_SUCH_TRANSACTION PS_BUS_NAME ".Error.NoSuchTransaction"
#define PS_ERROR_AUTH_FAILED PS_BUS_NAME ".Error.AuthorizationFailed"
/* A change that could not be written to the state directory; nothing of it was made. */
#define PS_ERROR_STATE_NOT_WRITABLE PS_BUS_NAME ".Error.StateNotWritable"
#define PS_ERROR_NO_SUCH_JOB PS_BUS_NAME ".Error.NoSuchJob"
#define PS_ERROR_AI_BUSY PS_BUS_NAME ".Error.AIBusy"
#define PS_ERROR_AI_JOB_STATE PS_BUS_NAME ".Error.AIJobState"
#define PS_ERROR_INVALID_CONFIG PS_BUS_NAME ".Error.InvalidConfiguration"
#define PS_ERROR_INVALID_ADDRESS PS_BUS_NAME ".Error.InvalidAddress"
#define PS_ERROR_ALLOWLISTED PS_BUS_NAME ".Error.Allowlisted"
#define PS_ERROR_BAN_TABLE_FULL PS_BUS_NAME ".Error.BanTableFull"
#define PS_ERROR_NO_SUCH_BAN PS_BUS_NAME ".Error.NoSuchBan"
#define PS_ERROR_NO_JOURNAL PS_BUS_NAME ".Error.NoJournal"
#define PS_ERROR_NOT_REGULAR_FILE PS_BUS_NAME ".Error.NotARegularFile"

/* polkit actions, one per mutating area (polkit/org.packetscope.guarder1.policy). */
#define PS_POLKIT_MANAGE_LINKS "org.packetscope.guarder1.manage-links"
#define PS_POLKIT_MANAGE_FILTERS "org.packetscope.guarder1.manage-filters"
#define PS_POLKIT_CONFIGURE_AI "org.packetscope.guarder1.configure-ai"
#define PS_POLKIT_GENERATE "org.packetscope.guarder1.generate"
/* Manager.SetPanic: its own action, so that it can be granted apart from the rest. */
#define PS_POLKIT_PANIC "org.packetscope.guarder1.panic"

/* AI.Generate/Analyze: custom_prompt bytes; AIJob.Shadow: seconds. */
#define PS_AI_PROMPT_MAX 2000u
#define PS_AI_SHADOW_MAX_SEC 3600u
#define PS_POLKIT_CONFIGURE "org.packetscope.guarder1.configure"

/* Health.ListAnomalies: records per call (the daemon keeps at most 256 closed ones). */
#define PS_ANOMALIES_LIST_DEFAULT 100u
#define PS_ANOMALIES_LIST_MAX 1000u
#define PS_POLKIT_MANAGE_BANS "org.packetscope.guarder1.manage-bans"

/* Connections.List/ListIcmp: rows per call, and offset + limit (it bounds the top-N heap). */
#define PS_QUERY_LIMIT_DEFAULT 100u
#define PS_QUERY_LIMIT_MAX 10000u
#define PS_QUERY_WINDOW_MAX 100000u

/* Filters.ListRange: rules per page. */
#define PS_FILTERS_LIST_MAX 10000u
/* Filters.Import: the JSON text; Filters.Export: the JSON text it may answer with. */
#define PS_IMPORT_MAX_BYTES (8u * 1024 * 1024)
/* ImportFd reads its document from a file: no bus message to fit, only the memory a parse
 * costs (about ten times the text); room for 100,000 rules of 300 bytes each. */
#define PS_IMPORT_FD_MAX_BYTES (32u * 1024 * 1024)
#define PS_EXPORT_MAX_BYTES (24u * 1024 * 1024)
/* Filters.Test: matching connections it answers with at most. */
#define PS_TEST_ROWS_MAX 1000u
/* Filters.Apply: confirm_seconds. */
#define PS_CONFIRM_MAX_SEC 3600u

/*
 * Up to this many rules a set counts as small: exported and described indented for people, and
 * a change of it is announced rule by rule (InterfacesAdded/Removed, FilterAdded/Removed); past
 * it the text is compact and one Reloaded signal replaces the per-rule signals, which would
 * flood the bus for minutes at 100,000 rules.
 */
#define PS_SMALL_SET_MAX 1000u

/* Bans.Ban: seconds, at most ten years (0: until unbanned). */
#define PS_BAN_SECONDS_MAX (UINT64_C(10) * 365 * 86400)
/* Bans.BanBatch/UnbanBatch: entries in one call; Bans.List: rows per reply. */
#define PS_BANS_BATCH_MAX 1000000u
#define PS_BANS_LIST_MAX 10000u
/* Bans.BanFile: the bytes of the file read (its lines are at most PS_BANS_BATCH_MAX bans). */
#define PS_BANS_FILE_MAX_BYTES (64u * 1024 * 1024)
/* Bans.History: entries per reply. */
#define PS_BANS_HISTORY_MAX 10000u

/* Copyright (c) 2026 mailbox-migrate authors, see the included COPYING file */

#include "lib.h"
#include "str.h"
#include "strescape.h"
#include "guid.h"
#include "mailbox-migrate-backup-record.h"

static const char *const line_type_names[] = {
	[MAILBOX_MIGRATE_BACKUP_LINE_PASS] = "pass",
	[MAILBOX_MIGRATE_BACKUP_LINE_SNAPSHOT] = "snapshot",
	[MAILBOX_MIGRATE_BACKUP_LINE_PASSINFO] = "passinfo",
	[MAILBOX_MIGRATE_BACKUP_LINE_MAILBOX] = "mailbox",
	[MAILBOX_MIGRATE_BACKUP_LINE_DELETE] = "delete",
	[MAILBOX_MIGRATE_BACKUP_LINE_ADD] = "add",
	[MAILBOX_MIGRATE_BACKUP_LINE_FLAGS] = "flags",
	[MAILBOX_MIGRATE_BACKUP_LINE_EXPUNGE] = "expunge",
	[MAILBOX_MIGRATE_BACKUP_LINE_SUBSCRIBE] = "subscribe",
	[MAILBOX_MIGRATE_BACKUP_LINE_UNSUBSCRIBE] = "unsubscribe",
	[MAILBOX_MIGRATE_BACKUP_LINE_SPECIALUSE] = "specialuse",
};

static bool
line_type_has_snapshot_row(enum mailbox_migrate_backup_line_type type)
{
	return type == MAILBOX_MIGRATE_BACKUP_LINE_MAILBOX ||
		type == MAILBOX_MIGRATE_BACKUP_LINE_ADD ||
		type == MAILBOX_MIGRATE_BACKUP_LINE_SUBSCRIBE ||
		type == MAILBOX_MIGRATE_BACKUP_LINE_SPECIALUSE;
}

#define MAIL_FLAGS_STORED (MAIL_ANSWERED | MAIL_FLAGGED | MAIL_DELETED | \
			   MAIL_SEEN | MAIL_DRAFT)

bool mailbox_migrate_backup_hash_is_valid(const char *hash)
{
	unsigned int i;

	for (i = 0; hash[i] != '\0'; i++) {
		if (!((hash[i] >= '0' && hash[i] <= '9') ||
		      (hash[i] >= 'a' && hash[i] <= 'f')))
			return FALSE;
	}
	return i == 64;
}

static void line_field(string_t *dest, const char *value)
{
	str_append_c(dest, '\t');
	str_append_tabescaped(dest, value == NULL ? "" : value);
}

static void line_num(string_t *dest, unsigned long long value)
{
	str_printfa(dest, "\t%llu", value);
}

static void line_keywords(string_t *dest, const char *const *keywords)
{
	str_append_c(dest, '\t');
	if (keywords == NULL)
		return;
	str_append_tabescaped(dest, t_strarray_join(keywords, " "));
}

static void line_time(string_t *dest, time_t t)
{
	str_printfa(dest, "\t%lld", (long long)t);
}

void mailbox_migrate_backup_line_write(string_t *dest,
				       const struct mailbox_migrate_backup_line *line)
{
	i_assert(line->type < MAILBOX_MIGRATE_BACKUP_LINE_COUNT);
	str_append(dest, line_type_names[line->type]);
	switch (line->type) {
	case MAILBOX_MIGRATE_BACKUP_LINE_PASS:
	case MAILBOX_MIGRATE_BACKUP_LINE_SNAPSHOT:
	case MAILBOX_MIGRATE_BACKUP_LINE_PASSINFO:
		line_num(dest, line->pass_id);
		line_time(dest, line->time);
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_MAILBOX:
		line_field(dest, line->mailbox_guid);
		line_num(dest, line->uidvalidity);
		line_field(dest, line->name);
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_DELETE:
		line_field(dest, line->mailbox_guid);
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_ADD:
		line_field(dest, line->mailbox_guid);
		line_num(dest, line->uid);
		line_field(dest, line->guid);
		line_field(dest, line->hash);
		line_num(dest, line->size);
		line_num(dest, line->flags & MAIL_FLAGS_STORED);
		line_keywords(dest, line->keywords);
		line_time(dest, line->received);
		line_time(dest, line->saved);
		line_field(dest, line->pop3_uidl);
		line_num(dest, line->pop3_order);
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_FLAGS:
		line_field(dest, line->mailbox_guid);
		line_num(dest, line->uid);
		line_num(dest, line->flags & MAIL_FLAGS_STORED);
		line_keywords(dest, line->keywords);
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_EXPUNGE:
		line_field(dest, line->mailbox_guid);
		line_num(dest, line->uid);
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_SUBSCRIBE:
	case MAILBOX_MIGRATE_BACKUP_LINE_UNSUBSCRIBE:
		line_field(dest, line->name);
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_SPECIALUSE:
		line_field(dest, line->mailbox_guid);
		line_field(dest, line->special_use);
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_COUNT:
		i_unreached();
	}
	if (line->snapshot_row) {
		i_assert(line_type_has_snapshot_row(line->type));
		line_num(dest, line->from_pass);
		line_num(dest, line->until_pass);
	}
	str_append_c(dest, '\n');
}

static int parse_guid(const char *value, const char **guid_r)
{
	guid_128_t guid;

	if (guid_128_from_string(value, guid) < 0)
		return -1;
	*guid_r = value;
	return 0;
}

static int parse_time(const char *value, time_t *time_r)
{
	long long t;

	if (str_to_llong(value, &t) < 0)
		return -1;
	*time_r = (time_t)t;
	return 0;
}

static int parse_flags(const char *value, enum mail_flags *flags_r)
{
	unsigned int flags;

	if (str_to_uint(value, &flags) < 0 ||
	    (flags & ENUM_NEGATE(MAIL_FLAGS_STORED)) != 0)
		return -1;
	*flags_r = flags;
	return 0;
}

static const char *const *parse_keywords(const char *value)
{
	if (*value == '\0')
		return t_new(const char *, 1);
	return (const char *const *)t_strsplit_spaces(value, " ");
}

int mailbox_migrate_backup_line_parse(const char *text,
				      struct mailbox_migrate_backup_line *line_r,
				      const char **error_r)
{
	const char *const *args = t_strsplit_tabescaped(text);
	unsigned int i, count = str_array_length(args), want = 0;
	uoff_t size;
	bool bad = FALSE;

	i_zero(line_r);
	if (count == 0) {
		*error_r = "empty record line";
		return -1;
	}
	for (i = 0; i < MAILBOX_MIGRATE_BACKUP_LINE_COUNT; i++) {
		if (strcmp(args[0], line_type_names[i]) == 0)
			break;
	}
	if (i == MAILBOX_MIGRATE_BACKUP_LINE_COUNT) {
		*error_r = t_strdup_printf("unknown record line type '%s'",
					   args[0]);
		return -1;
	}
	line_r->type = i;
	switch (line_r->type) {
	case MAILBOX_MIGRATE_BACKUP_LINE_PASS:
	case MAILBOX_MIGRATE_BACKUP_LINE_SNAPSHOT:
	case MAILBOX_MIGRATE_BACKUP_LINE_PASSINFO:
		want = 3;
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_MAILBOX:
		want = 4;
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_DELETE:
		want = 2;
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_ADD:
		want = 12;
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_FLAGS:
		want = 5;
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_EXPUNGE:
		want = 3;
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_SUBSCRIBE:
	case MAILBOX_MIGRATE_BACKUP_LINE_UNSUBSCRIBE:
		want = 2;
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_SPECIALUSE:
		want = 3;
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_COUNT:
		i_unreached();
	}
	if (line_type_has_snapshot_row(line_r->type) && count == want + 2) {
		line_r->snapshot_row = TRUE;
		if (str_to_uint32(args[want], &line_r->from_pass) < 0 ||
		    str_to_uint32(args[want + 1], &line_r->until_pass) < 0 ||
		    line_r->from_pass == 0) {
			*error_r = t_strdup_printf("%s: invalid snapshot "
						   "passes", args[0]);
			return -1;
		}
	} else if (count != want) {
		*error_r = t_strdup_printf("%s: %u fields, expected %u",
					   args[0], count, want);
		return -1;
	}

	switch (line_r->type) {
	case MAILBOX_MIGRATE_BACKUP_LINE_PASS:
	case MAILBOX_MIGRATE_BACKUP_LINE_SNAPSHOT:
	case MAILBOX_MIGRATE_BACKUP_LINE_PASSINFO:
		bad = str_to_uint32(args[1], &line_r->pass_id) < 0 ||
			line_r->pass_id == 0 ||
			parse_time(args[2], &line_r->time) < 0;
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_MAILBOX:
		bad = parse_guid(args[1], &line_r->mailbox_guid) < 0 ||
			str_to_uint32(args[2], &line_r->uidvalidity) < 0 ||
			*args[3] == '\0';
		line_r->name = args[3];
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_DELETE:
		bad = parse_guid(args[1], &line_r->mailbox_guid) < 0;
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_ADD:
		bad = parse_guid(args[1], &line_r->mailbox_guid) < 0 ||
			str_to_uint32(args[2], &line_r->uid) < 0 ||
			line_r->uid == 0 ||
			!mailbox_migrate_backup_hash_is_valid(args[4]) ||
			str_to_uoff(args[5], &size) < 0 ||
			parse_flags(args[6], &line_r->flags) < 0 ||
			parse_time(args[8], &line_r->received) < 0 ||
			parse_time(args[9], &line_r->saved) < 0 ||
			str_to_uint32(args[11], &line_r->pop3_order) < 0;
		line_r->guid = args[3];
		line_r->hash = args[4];
		line_r->size = size;
		line_r->keywords = parse_keywords(args[7]);
		line_r->pop3_uidl = args[10];
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_FLAGS:
		bad = parse_guid(args[1], &line_r->mailbox_guid) < 0 ||
			str_to_uint32(args[2], &line_r->uid) < 0 ||
			line_r->uid == 0 ||
			parse_flags(args[3], &line_r->flags) < 0;
		line_r->keywords = parse_keywords(args[4]);
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_EXPUNGE:
		bad = parse_guid(args[1], &line_r->mailbox_guid) < 0 ||
			str_to_uint32(args[2], &line_r->uid) < 0 ||
			line_r->uid == 0;
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_SUBSCRIBE:
	case MAILBOX_MIGRATE_BACKUP_LINE_UNSUBSCRIBE:
		bad = *args[1] == '\0';
		line_r->name = args[1];
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_SPECIALUSE:
		bad = parse_guid(args[1], &line_r->mailbox_guid) < 0;
		line_r->special_use = args[2];
		break;
	case MAILBOX_MIGRATE_BACKUP_LINE_COUNT:
		i_unreached();
	}
	if (bad) {
		*error_r = t_strdup_printf("%s: invalid field", args[0]);
		return -1;
	}
	return 0;
}

/*-------------------------------------------------------------------------
 *
 * lg_journal.c
 *		The standby's audit trail: an append-only file under the data
 *		directory, pg_lambdaguard/standby_history, where the worker records
 *		its decisions while the server is in recovery and cannot write
 *		lambdaguard.history.
 *
 * Durability.  lg_journal_append() writes one record, fsyncs the file, and
 * fsyncs the directory when the file is new to this process (created,
 * replaced by a purge, or first written since the worker started), all
 * before it returns; the caller signals only after that.  A record that
 * cannot be made durable is cut off the file again (ftruncate to its old
 * length) and raises an ERROR, so that no signal goes without its record.
 * With fsync = off, pg_fsync() does nothing, as for the rest of the server.
 *
 * Format.  One line per record, tab-separated:
 *
 *		L1  system_identifier  journal_id  seq  at  field...  crc
 *
 * "at" is the decision's time in microseconds since 2000-01-01 (as
 * TimestampTz); the fields are the caller's, escaped as in COPY's text
 * format (\N for NULL); crc is the CRC-32C of the line before it.  A line
 * without its newline or with a wrong CRC (a write cut short by a crash,
 * which was never fsynced, so its signal was never sent) is ignored.  A
 * later record with the same journal_id and seq replaces an earlier one: an
 * outcome recorded after the signal (skipped, failed).
 *
 * Identity.  Every record names the server's system identifier: files
 * copied from another server (pg_basebackup, pg_rewind) keep their records
 * out of this server's view and import.  journal_id is drawn at random
 * when a file is started, so that the import's mark (lambdaguard.
 * standby_imports) never confuses one file's records with a later file's.
 *
 * Only the worker writes the file (its own scans and scan(false)); readers
 * read it whole without a lock: an append is one write() of whole lines at
 * the end, and a purge replaces the file with durable_rename().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/xlog.h"
#include "common/file_perm.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "port/pg_crc32c.h"
#include "storage/fd.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "lg_journal.h"

#define LG_JOURNAL_DIR		"pg_lambdaguard"
#define LG_JOURNAL_FILE		LG_JOURNAL_DIR "/standby_history"
#define LG_JOURNAL_TMP		LG_JOURNAL_DIR "/standby_history.tmp"
#define LG_JOURNAL_MAGIC	"L1"
/* magic, system identifier, journal id, seq, at */
#define LG_JOURNAL_HEADER	5

/* This process's place in the file: 0 until it first appends */
static int64 my_journal_id = 0;
static int64 my_last_seq = 0;
/* Has the directory entry of the file been fsynced by this process? */
static bool dir_synced = false;

const char *
lg_journal_path(void)
{
	return LG_JOURNAL_FILE;
}

/* Append s to buf, escaped as COPY's text format does */
static void
append_escaped(StringInfo buf, const char *s)
{
	for (; *s; s++)
	{
		switch (*s)
		{
			case '\\':
				appendStringInfoString(buf, "\\\\");
				break;
			case '\t':
				appendStringInfoString(buf, "\\t");
				break;
			case '\n':
				appendStringInfoString(buf, "\\n");
				break;
			case '\r':
				appendStringInfoString(buf, "\\r");
				break;
			default:
				appendStringInfoChar(buf, *s);
		}
	}
}

/* Undo append_escaped in place; \N is NULL */
static char *
unescape(char *s)
{
	char	   *r = s,
			   *w = s;

	if (strcmp(s, "\\N") == 0)
		return NULL;
	while (*r)
	{
		if (*r == '\\' && r[1] != '\0')
		{
			r++;
			switch (*r)
			{
				case 't':
					*w++ = '\t';
					break;
				case 'n':
					*w++ = '\n';
					break;
				case 'r':
					*w++ = '\r';
					break;
				default:
					*w++ = *r;
			}
			r++;
		}
		else
			*w++ = *r++;
	}
	*w = '\0';
	return s;
}

static void
append_line(StringInfo buf, const LgJournalRecord *rec)
{
	pg_crc32c	crc;
	int			start = buf->len;
	int			i;

	appendStringInfo(buf, "%s\t" UINT64_FORMAT "\t" INT64_FORMAT "\t" INT64_FORMAT "\t" INT64_FORMAT,
					 LG_JOURNAL_MAGIC, rec->sysid, rec->journal_id, rec->seq,
					 (int64) rec->at);
	for (i = 0; i < rec->nfields; i++)
	{
		appendStringInfoChar(buf, '\t');
		if (rec->fields[i] == NULL)
			appendStringInfoString(buf, "\\N");
		else
			append_escaped(buf, rec->fields[i]);
	}
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, buf->data + start, buf->len - start);
	FIN_CRC32C(crc);
	appendStringInfo(buf, "\t%08x\n", crc);
}

/*
 * The whole file, or NULL if there is none.  Never raises an error for a
 * missing file; does for one that cannot be read.
 */
static char *
read_file(const char *path, Size *len)
{
	int			fd;
	StringInfoData buf;

	fd = open(path, O_RDONLY | PG_BINARY, 0);
	if (fd < 0)
	{
		if (errno == ENOENT)
			return NULL;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("pg_lambdaguard: could not open file \"%s\": %m", path)));
	}
	initStringInfo(&buf);
	for (;;)
	{
		ssize_t		n;

		enlargeStringInfo(&buf, 65536);
		n = read(fd, buf.data + buf.len, buf.maxlen - buf.len - 1);
		if (n < 0)
		{
			int			save_errno = errno;

			close(fd);
			errno = save_errno;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("pg_lambdaguard: could not read file \"%s\": %m", path)));
		}
		if (n == 0)
			break;
		buf.len += n;
	}
	buf.data[buf.len] = '\0';
	close(fd);
	*len = buf.len;
	return buf.data;
}

/* Parse one line (without its newline), or return false if it is damaged */
static bool
parse_line(char *line, int nfields, LgJournalRecord *rec)
{
	char	   *last_tab = strrchr(line, '\t');
	char	   *p;
	char	   *end;
	pg_crc32c	crc;
	char	  **parts;
	int			n = 0;
	int			want = LG_JOURNAL_HEADER + nfields;

	if (last_tab == NULL)
		return false;
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, line, last_tab - line);
	FIN_CRC32C(crc);
	if (strtoul(last_tab + 1, &end, 16) != crc || *end != '\0')
		return false;
	*last_tab = '\0';

	parts = palloc(sizeof(char *) * want);
	for (p = line; p != NULL && n < want; n++)
	{
		char	   *tab = strchr(p, '\t');

		parts[n] = p;
		if (tab)
			*tab = '\0';
		p = tab ? tab + 1 : NULL;
	}
	if (n != want || p != NULL || strcmp(parts[0], LG_JOURNAL_MAGIC) != 0)
		return false;

	rec->sysid = (uint64) strtoull(parts[1], NULL, 10);
	rec->journal_id = (int64) strtoll(parts[2], NULL, 10);
	rec->seq = (int64) strtoll(parts[3], NULL, 10);
	rec->at = (TimestampTz) strtoll(parts[4], NULL, 10);
	rec->nfields = nfields;
	rec->fields = parts + LG_JOURNAL_HEADER;
	for (n = 0; n < nfields; n++)
		rec->fields[n] = unescape(rec->fields[n]);
	return true;
}

/*
 * Every intact record of the file with nfields fields, of any server, in
 * file order, a later version of a record (same journal_id and seq)
 * replacing the earlier one in place.  A List of LgJournalRecord *, in
 * CurrentMemoryContext; NIL if there is no file.
 */
List *
lg_journal_read(int nfields)
{
	Size		len = 0;
	char	   *data = read_file(LG_JOURNAL_FILE, &len);
	char	   *line;
	List	   *records = NIL;

	if (data == NULL)
		return NIL;
	line = data;
	for (;;)
	{
		char	   *nl = memchr(line, '\n', data + len - line);
		LgJournalRecord *rec;
		ListCell   *lc;
		bool		replaced = false;

		if (nl == NULL)
			break;				/* nothing, or a last line cut short */
		*nl = '\0';
		rec = palloc(sizeof(LgJournalRecord));
		if (parse_line(line, nfields, rec))
		{
			/* a later version follows its record at once: look there first */
			LgJournalRecord *prev = records ? (LgJournalRecord *) llast(records) : NULL;

			if (prev && prev->sysid == rec->sysid &&
				prev->journal_id == rec->journal_id && prev->seq == rec->seq)
			{
				llast(records) = rec;
				line = nl + 1;
				continue;
			}
			foreach(lc, records)
			{
				LgJournalRecord *old = (LgJournalRecord *) lfirst(lc);

				if (old->sysid == rec->sysid && old->journal_id == rec->journal_id &&
					old->seq == rec->seq)
				{
					lfirst(lc) = rec;
					replaced = true;
					break;
				}
			}
			if (!replaced)
				records = lappend(records, rec);
		}
		line = nl + 1;
	}
	return records;
}

/* Create the directory if needed; fsync it and its parent when created */
static void
ensure_directory(void)
{
	struct stat st;

	if (stat(LG_JOURNAL_DIR, &st) == 0 && S_ISDIR(st.st_mode))
		return;
	if (MakePGDirectory(LG_JOURNAL_DIR) < 0 && errno != EEXIST)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("pg_lambdaguard: could not create directory \"%s\": %m",
						LG_JOURNAL_DIR)));
	if (fsync_fname_ext(".", true, false, ERROR) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("pg_lambdaguard: could not fsync the data directory")));
}

/* Where this process continues: the file's journal and its last seq */
static void
find_place(int nfields)
{
	uint64		sysid = GetSystemIdentifier();
	List	   *records = lg_journal_read(nfields);
	ListCell   *lc;

	foreach(lc, records)
	{
		LgJournalRecord *rec = (LgJournalRecord *) lfirst(lc);

		if (rec->sysid != sysid)
			continue;
		my_journal_id = rec->journal_id;
		my_last_seq = Max(my_last_seq, rec->seq);
	}
	if (my_journal_id == 0)
	{
		uint64		r = 0;

		if (!pg_strong_random(&r, sizeof(r)))
			r = (uint64) GetCurrentTimestamp() ^ ((uint64) MyProcPid << 40);
		my_journal_id = (int64) (r & PG_INT64_MAX);
		if (my_journal_id == 0)
			my_journal_id = 1;
		my_last_seq = 0;
	}
}

/*
 * Append one record and make it durable: the file fsynced, and its
 * directory too when the file is new to this process.  seq 0 makes a new
 * record; another seq records a later version of that record (its outcome
 * after the signal).  Returns the record's seq.  Raises an ERROR, leaving
 * the file as it was, if the record cannot be made durable.  Called by the
 * worker only, which holds no lock on the file: it is the only writer.
 */
int64
lg_journal_append(TimestampTz at, int nfields, char **fields, int64 seq)
{
	LgJournalRecord rec;
	StringInfoData line;
	struct stat st;
	int			fd;
	off_t		old_size;
	ssize_t		written;
	int			save_errno;
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	ensure_directory();
	if (my_journal_id == 0)
		find_place(nfields);
	MemoryContextSwitchTo(old);

	rec.sysid = GetSystemIdentifier();
	rec.journal_id = my_journal_id;
	rec.seq = seq > 0 ? seq : my_last_seq + 1;
	rec.at = at;
	rec.nfields = nfields;
	rec.fields = fields;
	initStringInfo(&line);
	append_line(&line, &rec);

	if (stat(LG_JOURNAL_FILE, &st) != 0)
		dir_synced = false;		/* the file is about to be created */
	fd = open(LG_JOURNAL_FILE, O_WRONLY | O_APPEND | O_CREAT | PG_BINARY,
			  pg_file_create_mode);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("pg_lambdaguard: could not open file \"%s\": %m",
						LG_JOURNAL_FILE),
				 errdetail("The decision is not carried out without its record.")));
	old_size = lseek(fd, 0, SEEK_END);

	errno = 0;
	written = write(fd, line.data, line.len);
	if (written != line.len || pg_fsync(fd) != 0)
	{
		save_errno = errno ? errno : ENOSPC;
		/* take back what may be in the file: the signal will not be sent */
		if (old_size >= 0 && ftruncate(fd, old_size) != 0)
			ereport(WARNING,
					(errcode_for_file_access(),
					 errmsg("pg_lambdaguard: could not truncate file \"%s\" after a failed write: %m",
							LG_JOURNAL_FILE)));
		close(fd);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("pg_lambdaguard: could not make a record of file \"%s\" durable: %m",
						LG_JOURNAL_FILE),
				 errdetail("The decision is not carried out without its record.")));
	}
	if (close(fd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("pg_lambdaguard: could not close file \"%s\": %m",
						LG_JOURNAL_FILE)));
	if (!dir_synced)
	{
		if (fsync_fname_ext(LG_JOURNAL_DIR, true, false, ERROR) != 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("pg_lambdaguard: could not fsync directory \"%s\"",
							LG_JOURNAL_DIR)));
		dir_synced = true;
	}
	pfree(line.data);
	if (seq <= 0)
		my_last_seq = rec.seq;
	return rec.seq;
}

/*
 * Drop the records decided before "cutoff" (lambdaguard.history_retention):
 * the kept ones go to a new file that replaces the old one durably.
 * Worker only.
 */
void
lg_journal_purge(TimestampTz cutoff, int nfields)
{
	List	   *records = lg_journal_read(nfields);
	ListCell   *lc;
	StringInfoData buf;
	int			dropped = 0;
	int			fd;

	foreach(lc, records)
		dropped += ((LgJournalRecord *) lfirst(lc))->at < cutoff;
	if (dropped == 0)
		return;

	initStringInfo(&buf);
	foreach(lc, records)
	{
		LgJournalRecord *rec = (LgJournalRecord *) lfirst(lc);

		if (rec->at >= cutoff)
			append_line(&buf, rec);
	}
	fd = open(LG_JOURNAL_TMP, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY,
			  pg_file_create_mode);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("pg_lambdaguard: could not create file \"%s\": %m",
						LG_JOURNAL_TMP)));
	errno = 0;
	if (write(fd, buf.data, buf.len) != buf.len || pg_fsync(fd) != 0)
	{
		int			save_errno = errno ? errno : ENOSPC;

		close(fd);
		unlink(LG_JOURNAL_TMP);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("pg_lambdaguard: could not write file \"%s\": %m",
						LG_JOURNAL_TMP)));
	}
	close(fd);
	/* fsyncs the file and the directory */
	if (durable_rename(LG_JOURNAL_TMP, LG_JOURNAL_FILE, ERROR) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("pg_lambdaguard: could not replace file \"%s\"",
						LG_JOURNAL_FILE)));
	dir_synced = true;
}

/* Is there a journal file? */
bool
lg_journal_exists(void)
{
	struct stat st;

	return stat(LG_JOURNAL_FILE, &st) == 0;
}

/*
 * Remove the file once its records are imported: durably, so that they
 * are not read again (if they were, the import's mark skips them).
 * A later file starts a new journal.
 */
void
lg_journal_remove(void)
{
	if (lg_journal_exists())
		(void) durable_unlink(LG_JOURNAL_FILE, ERROR);
	my_journal_id = 0;
	my_last_seq = 0;
	dir_synced = false;
}

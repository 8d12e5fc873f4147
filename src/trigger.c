/*-------------------------------------------------------------------------
 *
 * trigger.c
 *		The trigger function an application attaches to its customers
 *		table: INSERT creates the tenant, DELETE drops it, UPDATE of the
 *		name renames it.
 *
 * Configured by trigger arguments of the form key=value:
 *	 name=<column>				the column holding the tenant name (required)
 *	 isolation=schema|database	default schema
 *	 on_delete=drop|detach|keep	default drop; detach keeps the data aside
 *	 grant=<role>				the application's role: granted the owner
 *								role of each tenant the trigger creates
 *	 mode=inline|queued			default inline; database tenants are always
 *								queued (a trigger never waits for CREATE
 *								DATABASE, and nothing starts before commit)
 *
 * Whoever fires the trigger (or the owner of a SECURITY DEFINER wrapper a
 * DBA made with tenant_mgr.provisioning_trigger()) must hold EXECUTE on the
 * function that does the same by hand: tenant_create, tenant_drop,
 * tenant_detach or tenant_rename.  Every name goes through the same
 * validation as tenant_create().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/rel.h"

#include "tenant_mgr.h"

PG_FUNCTION_INFO_V1(customers_trigger);

typedef struct TmTriggerConfig
{
	const char *column;
	const char *isolation;
	const char *on_delete;
	bool		queued;
	const char *grantee;
} TmTriggerConfig;

static void
tm_trigger_config(Trigger *trigger, Relation rel, TmTriggerConfig *cfg)
{
	int			i;
	int			j;

	cfg->column = NULL;
	cfg->isolation = "schema";
	cfg->on_delete = "drop";
	cfg->queued = false;
	cfg->grantee = NULL;

	for (i = 0; i < trigger->tgnargs; i++)
	{
		const char *arg = trigger->tgargs[i];
		const char *eq = strchr(arg, '=');
		char	   *key;
		const char *value;

		if (eq == NULL)
			goto invalid;
		key = pnstrdup(arg, eq - arg);
		value = eq + 1;
		/* the arguments before this one are valid, so each has its "=" */
		for (j = 0; j < i; j++)
		{
			if (strncmp(trigger->tgargs[j], arg, eq - arg + 1) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid argument \"%s\" of trigger \"%s\" on table \"%s\"",
								arg, trigger->tgname, RelationGetRelationName(rel)),
						 errdetail("Argument \"%s\" is given more than once.", key)));
		}
		if (strcmp(key, "name") == 0 && *value)
			cfg->column = value;
		else if (strcmp(key, "isolation") == 0 &&
				 (strcmp(value, "schema") == 0 || strcmp(value, "database") == 0))
			cfg->isolation = value;
		else if (strcmp(key, "on_delete") == 0 &&
				 (strcmp(value, "drop") == 0 || strcmp(value, "detach") == 0 ||
				  strcmp(value, "keep") == 0))
			cfg->on_delete = value;
		else if (strcmp(key, "grant") == 0 && *value)
			cfg->grantee = value;
		else if (strcmp(key, "mode") == 0 &&
				 (strcmp(value, "inline") == 0 || strcmp(value, "queued") == 0))
			cfg->queued = strcmp(value, "queued") == 0;
		else
			goto invalid;
		continue;

invalid:
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid argument \"%s\" of trigger \"%s\" on table \"%s\"",
						arg, trigger->tgname, RelationGetRelationName(rel)),
				 errhint("Valid arguments are name=<column>, isolation=schema|database, on_delete=drop|detach|keep, mode=inline|queued and grant=<role>.")));
	}
	if (cfg->column == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("trigger \"%s\" on table \"%s\" does not name the tenant name column",
						trigger->tgname, RelationGetRelationName(rel)),
				 errhint("Pass the argument name=<column>.")));
	if (tm_isolation_parse(cfg->isolation) == TM_DATABASE)
		cfg->queued = true;
}

/* The tenant name in a row, or NULL. */
static char *
tm_row_name(HeapTuple tuple, Relation rel, const char *column)
{
	int			attnum = SPI_fnumber(RelationGetDescr(rel), column);

	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						column, RelationGetRelationName(rel))));
	return SPI_getvalue(tuple, RelationGetDescr(rel), attnum);
}

/*
 * customers_trigger() returns trigger
 */
Datum
customers_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TmTriggerConfig cfg;
	Relation	rel;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("customers_trigger() was not called by the trigger manager")));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("customers_trigger() must be fired AFTER ... FOR EACH ROW")));

	rel = trigdata->tg_relation;
	tm_trigger_config(trigdata->tg_trigger, rel, &cfg);

	tm_spi_connect();
	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
	{
		char	   *name = tm_row_name(trigdata->tg_trigtuple, rel, cfg.column);

		tm_check_may(GetUserId(), TM_FN_CREATE);
		if (name == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("tenant name must not be null"),
					 errdetail("Column \"%s\" of the new row of \"%s\" is null.",
							   cfg.column, RelationGetRelationName(rel))));
		tm_create(name, cfg.isolation, NULL, "{}", !cfg.queued, cfg.grantee, true);
	}
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
	{
		char	   *name = tm_row_name(trigdata->tg_trigtuple, rel, cfg.column);

		if (name != NULL && strcmp(cfg.on_delete, "drop") == 0)
		{
			tm_check_may(GetUserId(), TM_FN_DROP);
			(void) tm_drop(name, true, false);
		}
		else if (name != NULL && strcmp(cfg.on_delete, "detach") == 0)
		{
			tm_check_may(GetUserId(), TM_FN_DETACH);
			(void) tm_detach(name, true, false);
		}
	}
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		char	   *old_name = tm_row_name(trigdata->tg_trigtuple, rel, cfg.column);
		char	   *new_name = tm_row_name(trigdata->tg_newtuple, rel, cfg.column);

		if (old_name != NULL && new_name == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("tenant name must not be null"),
					 errdetail("Column \"%s\" of the updated row of \"%s\" is null.",
							   cfg.column, RelationGetRelationName(rel))));
		if (old_name == NULL && new_name != NULL)
		{
			tm_check_may(GetUserId(), TM_FN_CREATE);
			tm_create(new_name, cfg.isolation, NULL, "{}", !cfg.queued, cfg.grantee, true);
		}
		else if (old_name != NULL && strcmp(old_name, new_name) != 0)
		{
			tm_check_may(GetUserId(), TM_FN_RENAME);
			tm_rename(old_name, new_name);
		}
	}
	tm_spi_finish();

	return PointerGetDatum(NULL);
}

--
-- Settings: defaults, good values, and clear errors for bad ones
--
CREATE EXTENSION pg_lambdaguard;

SELECT name, boot_val AS default, unit, context, vartype
  FROM pg_settings WHERE name LIKE 'lambdaguard.%' ORDER BY name;

SHOW lambdaguard.ignored_parameters;

-- reloadable settings are checked by ALTER SYSTEM; good values pass
ALTER SYSTEM SET lambdaguard.roles = 'app, "Mixed Case", *';
ALTER SYSTEM SET lambdaguard.roles = 'role_that_does_not_exist_yet';
ALTER SYSTEM SET lambdaguard.application_names = 'lambda-%, worker\_%, api_';
ALTER SYSTEM SET lambdaguard.client_addresses = '10.0.0.0/8, 192.168.1.7, ::1, fd00::/8, local';
ALTER SYSTEM SET lambdaguard.client_addresses = '';
ALTER SYSTEM SET lambdaguard.naptime = '250ms';
ALTER SYSTEM SET lambdaguard.idle_in_transaction_timeout = '30s';
ALTER SYSTEM SET lambdaguard.history_retention = '1d';

-- bad lists: the error names the setting and the bad element
ALTER SYSTEM SET lambdaguard.client_addresses = '10.0.0.0/33';
ALTER SYSTEM SET lambdaguard.client_addresses = '10.0.0.1/8';
ALTER SYSTEM SET lambdaguard.client_addresses = '10.0.0.0/8, not-an-address';
ALTER SYSTEM SET lambdaguard.client_addresses = '10.0.0.0/';
ALTER SYSTEM SET lambdaguard.client_addresses = '::1/129';
ALTER SYSTEM SET lambdaguard.roles = 'app,,other';
ALTER SYSTEM SET lambdaguard.roles = 'app,';
ALTER SYSTEM SET lambdaguard.roles = '"unterminated';
ALTER SYSTEM SET lambdaguard.roles = 'a_role_name_that_is_much_longer_than_sixty_three_bytes_which_is_the_limit';
ALTER SYSTEM SET lambdaguard.application_names = 'ends-with-escape\';
ALTER SYSTEM SET lambdaguard.application_names = ',';
ALTER SYSTEM SET lambdaguard.application_names = 'app\, checkout-%';
-- an element longer than the limit in the address list
SELECT repeat('1', 300) AS long_element \gset
ALTER SYSTEM SET lambdaguard.client_addresses = :'long_element';
-- a list of 1001 elements, and a very long element
DO $$
DECLARE detail text;
BEGIN
  PERFORM set_config('lambdaguard.ignored_parameters',
                     (SELECT string_agg('p' || g, ',') FROM generate_series(1, 1001) g), false);
EXCEPTION WHEN invalid_parameter_value THEN
  GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
  RAISE NOTICE 'rejected: %', detail;
END $$;
DO $$
DECLARE detail text;
BEGIN
  PERFORM set_config('lambdaguard.ignored_parameters', repeat('x', 100000), false);
EXCEPTION WHEN invalid_parameter_value THEN
  GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
  RAISE NOTICE 'rejected: %', detail;
END $$;
SHOW lambdaguard.ignored_parameters;
-- 1000 elements are fine
SELECT 'ALTER SYSTEM SET lambdaguard.roles = ''' ||
       string_agg('r' || g, ',') || '''' AS many
  FROM generate_series(1, 1000) g \gset
:many;

-- bad numbers and types
ALTER SYSTEM SET lambdaguard.naptime = 5;
ALTER SYSTEM SET lambdaguard.naptime = '2h';
ALTER SYSTEM SET lambdaguard.idle_in_transaction_timeout = -1;
ALTER SYSTEM SET lambdaguard.max_terminations = 0;
ALTER SYSTEM SET lambdaguard.enabled = 'perhaps';
ALTER SYSTEM SET lambdaguard.active_timeout = 'soon';

-- reloadable settings cannot be changed per session
SET lambdaguard.naptime = 500;
SET lambdaguard.roles = 'app';
ALTER SYSTEM SET lambdaguard.max_events = 5;

ALTER SYSTEM RESET ALL;

-- superuser settings: SET works, bad values are rejected
SET lambdaguard.track_pinning = watched;
SHOW lambdaguard.track_pinning;
SET lambdaguard.track_pinning = 'sometimes';
SET lambdaguard.ignored_parameters = 'search_path, work_mem';
SHOW lambdaguard.ignored_parameters;
SET lambdaguard.ignored_parameters = 'search_path,,work_mem';
RESET lambdaguard.track_pinning;
RESET lambdaguard.ignored_parameters;

-- an unknown setting in the reserved prefix
SET lambdaguard.no_such_setting = 1;

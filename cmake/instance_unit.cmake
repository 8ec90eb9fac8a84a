# pgbust@.service, the template unit for one daemon per database on a host, derived from
# systemd/pgbust.service so the two cannot drift: instance NAME runs
# /etc/pgbust/NAME.yaml with its own state directory (/var/lib/pgbust/NAME, which the
# daemon's default state_dir follows through $STATE_DIRECTORY) and runtime directory.
#
# include()d: pgbust_instance_unit(<unit text> <output variable>).
# Script mode: cmake -DUNIT=systemd/pgbust.service -DOUT=pgbust@.service -P instance_unit.cmake

# Replaces `from` by `to` in the variable `var`; every anchor must be found, so an edit to
# pgbust.service that moves one fails the build instead of shipping a template that runs the
# wrong config.
macro(pgbust_unit_replace var from to)
  string(FIND "${${var}}" "${from}" pgbust_at)
  if(pgbust_at EQUAL -1)
    message(FATAL_ERROR "cmake/instance_unit.cmake: systemd/pgbust.service no longer contains "
                        "'${from}'\; update the template's substitutions")
  endif()
  string(REPLACE "${from}" "${to}" ${var} "${${var}}")
endmacro()

function(pgbust_instance_unit unit out_var)
  pgbust_unit_replace(unit "# pgbust: keeps Redis caches correct by watching PostgreSQL commits.\n"
    "# pgbust@NAME: one pgbust per database on a host, each with /etc/pgbust/NAME.yaml (its own\n# slot, state and status.listen port), /var/lib/pgbust/NAME and /run/pgbust/NAME. Enable\n# with `systemctl enable --now pgbust@NAME`. Everything else is as in pgbust.service:\n#\n")
  pgbust_unit_replace(unit "Description=pgbust cache invalidation from PostgreSQL commits to Redis\n"
    "Description=pgbust cache invalidation from PostgreSQL commits to Redis (%i)\n")
  pgbust_unit_replace(unit "--config /etc/pgbust/pgbust.yaml\n" "--config /etc/pgbust/%i.yaml\n")
  pgbust_unit_replace(unit "StateDirectory=pgbust\n" "StateDirectory=pgbust/%i\n")
  pgbust_unit_replace(unit "RuntimeDirectory=pgbust\n" "RuntimeDirectory=pgbust/%i\n")
  pgbust_unit_replace(unit "EnvironmentFile=-/etc/default/pgbust\n"
    "EnvironmentFile=-/etc/default/pgbust\nEnvironmentFile=-/etc/default/pgbust-%i\n")
  set(${out_var} "${unit}" PARENT_SCOPE)
endfunction()

if(CMAKE_SCRIPT_MODE_FILE AND DEFINED UNIT AND DEFINED OUT)
  file(READ "${UNIT}" text)
  pgbust_instance_unit("${text}" text)
  file(WRITE "${OUT}" "${text}")
endif()

# What `cmake --install` puts beside the binary: the systemd unit (its paths generated from
# the install prefix, so it runs the binary just installed), the sysusers snippet, the example
# config (never overwriting an existing one: an edited config outlives a re-install), the
# rules.d directory, README, examples and the monitoring bundle. debian/ builds the package
# from the same rules.

# The unit directory: systemd's own for a /usr prefix (Debian bookworm: /lib/systemd/system),
# else under the prefix.
pkg_get_variable(PGBUST_SYSTEMD_PC_UNITDIR systemd systemdsystemunitdir)
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr" AND PGBUST_SYSTEMD_PC_UNITDIR)
  set(unitdir_default "${PGBUST_SYSTEMD_PC_UNITDIR}")
else()
  set(unitdir_default "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
endif()
set(PGBUST_SYSTEMD_UNITDIR "${unitdir_default}" CACHE PATH "where the systemd unit is installed")

set(PGBUST_CONFIG_DIR "${CMAKE_INSTALL_FULL_SYSCONFDIR}/pgbust")

# systemd/pgbust.service names /usr/bin/pgbust and /etc/pgbust (the package's paths); the
# installed copy names this install's.
file(READ ${CMAKE_SOURCE_DIR}/systemd/pgbust.service pgbust_service)
include(${CMAKE_SOURCE_DIR}/cmake/instance_unit.cmake)
pgbust_instance_unit("${pgbust_service}" pgbust_instance_service)  # pgbust@.service
foreach(name pgbust.service pgbust@.service)
  if(name STREQUAL "pgbust.service")
    set(unit "${pgbust_service}")
  else()
    set(unit "${pgbust_instance_service}")
  endif()
  string(REPLACE "/usr/bin/pgbust" "${CMAKE_INSTALL_FULL_BINDIR}/pgbust" unit "${unit}")
  string(REPLACE "/etc/pgbust/" "${PGBUST_CONFIG_DIR}/" unit "${unit}")
  string(REPLACE "/usr/share/doc/pgbust/" "${CMAKE_INSTALL_FULL_DOCDIR}/" unit "${unit}")
  file(WRITE ${CMAKE_BINARY_DIR}/generated/${name} "${unit}")
endforeach()
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${CMAKE_SOURCE_DIR}/systemd/pgbust.service ${CMAKE_SOURCE_DIR}/cmake/instance_unit.cmake)

install(FILES ${CMAKE_BINARY_DIR}/generated/pgbust.service
              ${CMAKE_BINARY_DIR}/generated/pgbust@.service
        DESTINATION ${PGBUST_SYSTEMD_UNITDIR})
install(FILES systemd/pgbust.sysusers.conf DESTINATION ${CMAKE_INSTALL_PREFIX}/lib/sysusers.d
        RENAME pgbust.conf)
install(DIRECTORY DESTINATION ${PGBUST_CONFIG_DIR}/rules.d)
# The example config only where there is none: a re-install keeps the operator's edits and
# puts the shipped one beside them as pgbust.yaml.dist. (file(INSTALL) adds DESTDIR itself;
# the existence check has to add it.)
set(shipped_config ${CMAKE_SOURCE_DIR}/systemd/pgbust.yaml)
install(CODE "
  if(EXISTS \"\$ENV{DESTDIR}${PGBUST_CONFIG_DIR}/pgbust.yaml\")
    message(STATUS \"Keeping: \$ENV{DESTDIR}${PGBUST_CONFIG_DIR}/pgbust.yaml (shipped: pgbust.yaml.dist)\")
    file(INSTALL \"${shipped_config}\" DESTINATION \"${PGBUST_CONFIG_DIR}\" RENAME pgbust.yaml.dist)
  else()
    file(INSTALL \"${shipped_config}\" DESTINATION \"${PGBUST_CONFIG_DIR}\")
  endif()
")
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})  # the unit's Documentation=
install(DIRECTORY examples/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples
        PATTERN "run.sh" EXCLUDE)
install(DIRECTORY monitoring/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/monitoring)

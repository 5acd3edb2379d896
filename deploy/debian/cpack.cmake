# The Debian package (issue 10): `cpack -G DEB` in a build dir configured with
# -DCMAKE_INSTALL_PREFIX=/usr, through deploy/package.sh. It holds exactly what `cmake --install`
# lays out; the maintainer scripts beside this file add what a package must do at install time
# (the microcare system user, /var/lib/microcare, the unit) and undo it on purge.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME microcare)
set(CPACK_PACKAGE_VENDOR MicroCare)
set(CPACK_PACKAGE_CONTACT "MicroCare maintainers <maintainers@microcare.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "microneedling contraindication and aftercare service for EHRs (HL7 FHIR R4)")
set(CPACK_PACKAGE_DESCRIPTION
  "The EHR calls MicroCare when a microneedling treatment is recorded; MicroCare reads the
patient's record from the EHR's FHIR server, applies the clinic's rule pack and writes back a
CarePlan with a DetectedIssue per contraindication. See /usr/share/doc/microcare/OPERATIONS.md.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # microcare_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION misc)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The shared libraries the binary links (libssl3, libsqlite3-0, libpq5, libboost-url1.81.0, libstdc++6,
# libc6...) are computed by dpkg-shlibdeps from the binary itself, so the list cannot drift from
# what is linked. The rest is what the maintainer scripts and the service use: useradd/userdel
# (passwd), deb-systemd-helper (init-system-helpers), the system CA store the EHR's certificate
# is verified against when ehr.caFile is empty (ca-certificates).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "passwd, init-system-helpers (>= 1.54), ca-certificates")
# `microcare backup` of a PostgreSQL store (store.url) runs its pg_dump.
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "postgresql-client")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# conffiles: dpkg keeps the admin's edits on upgrade and removal, and deletes them on purge.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_CURRENT_LIST_DIR}/conffiles
  ${CMAKE_CURRENT_LIST_DIR}/postinst
  ${CMAKE_CURRENT_LIST_DIR}/prerm
  ${CMAKE_CURRENT_LIST_DIR}/postrm)
# cpack packages what is built (deploy/package.sh checks the binary is there) and never starts a
# build of its own: CI's build is made once by deploy/setup.sh, and builds here share the cores.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY TRUE)
include(CPack)

# Third-party dependencies, all from Debian 12 packages (scripts/install-deps.sh).
# Each becomes an imported target named citypass::<name>.
find_package(PkgConfig REQUIRED)

pkg_check_modules(NFC REQUIRED IMPORTED_TARGET libnfc)
pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)
pkg_check_modules(PQ REQUIRED IMPORTED_TARGET libpq) # the PostgreSQL store (issue 16)
pkg_check_modules(EVENT REQUIRED IMPORTED_TARGET libevent_core libevent_extra libevent_pthreads)
pkg_check_modules(PROTOBUFC REQUIRED IMPORTED_TARGET libprotobuf-c)
pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)

add_library(citypass::nfc ALIAS PkgConfig::NFC)
add_library(citypass::sqlite3 ALIAS PkgConfig::SQLITE3)
add_library(citypass::pq ALIAS PkgConfig::PQ)
add_library(citypass::event ALIAS PkgConfig::EVENT)
add_library(citypass::protobufc ALIAS PkgConfig::PROTOBUFC)
add_library(citypass::cmocka ALIAS PkgConfig::CMOCKA)

# Debian 12's libmbedtls-dev (2.28) ships no .pc file: use pkg-config where a distribution
# provides one, else find the three libraries and the headers directly.
pkg_check_modules(MBEDTLS QUIET IMPORTED_TARGET mbedtls mbedx509 mbedcrypto)
if(MBEDTLS_FOUND)
  add_library(citypass::mbedtls ALIAS PkgConfig::MBEDTLS)
else()
  find_path(MBEDTLS_INCLUDE_DIR mbedtls/version.h)
  find_library(MBEDTLS_LIB mbedtls)
  find_library(MBEDX509_LIB mbedx509)
  find_library(MBEDCRYPTO_LIB mbedcrypto)
  if(NOT MBEDTLS_INCLUDE_DIR OR NOT MBEDTLS_LIB OR NOT MBEDX509_LIB OR NOT MBEDCRYPTO_LIB)
    message(FATAL_ERROR "mbedTLS not found: install libmbedtls-dev (scripts/install-deps.sh)")
  endif()
  file(STRINGS ${MBEDTLS_INCLUDE_DIR}/mbedtls/version.h _mbedtls_ver
       REGEX "^#define MBEDTLS_VERSION_STRING ")
  if(NOT _mbedtls_ver MATCHES "\"2\\.28\\.")
    message(WARNING "citypass is written for mbedTLS 2.28 (Debian 12); found ${_mbedtls_ver}")
  endif()
  add_library(citypass_mbedtls INTERFACE)
  target_include_directories(citypass_mbedtls INTERFACE ${MBEDTLS_INCLUDE_DIR})
  # Link order matters for static builds: tls needs x509 needs crypto.
  target_link_libraries(citypass_mbedtls INTERFACE ${MBEDTLS_LIB} ${MBEDX509_LIB} ${MBEDCRYPTO_LIB})
  add_library(citypass::mbedtls ALIAS citypass_mbedtls)
endif()

find_program(PROTOC_C protoc-c REQUIRED)
find_program(OPENSSL_BIN openssl)

# libfreefare: only the bench tests use it, as the independent DESFire client.
pkg_check_modules(FREEFARE REQUIRED IMPORTED_TARGET libfreefare)
add_library(citypass::freefare ALIAS PkgConfig::FREEFARE)

# libgpiod: the controller's gpio gate backend (a real relay and LEDs).
pkg_check_modules(GPIOD REQUIRED IMPORTED_TARGET libgpiod)
add_library(citypass::gpiod ALIAS PkgConfig::GPIOD)

# libsystemd: readiness, watchdog and journald for the daemons (service/).
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)
add_library(citypass::systemd ALIAS PkgConfig::SYSTEMD)

# libargon2: the passphrase of a deployment's backup (server/backup.h), Argon2id.
pkg_check_modules(ARGON2 REQUIRED IMPORTED_TARGET libargon2)
add_library(citypass::argon2 ALIAS PkgConfig::ARGON2)

# libevent's OpenSSL bufferevent: the back office's HTTPS (office/, docs/office.md). libevent
# 2.1.12's evhttp carries TLS only through it: there is no mbedTLS bufferevent.
pkg_check_modules(EVENT_OPENSSL REQUIRED IMPORTED_TARGET libevent_openssl openssl)
add_library(citypass::event_openssl ALIAS PkgConfig::EVENT_OPENSSL)
# libqrencode: the QR code a phone's wallet scans for its credential (office/, issue 18).
pkg_check_modules(QRENCODE REQUIRED IMPORTED_TARGET libqrencode)
add_library(citypass::qrencode ALIAS PkgConfig::QRENCODE)

# The controller runs its reader and its sync link on two threads.
find_package(Threads REQUIRED)

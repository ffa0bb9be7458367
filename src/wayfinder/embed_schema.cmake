# Turns sql/schema.sql into a C++ string constant (run at build time).
file(READ ${IN} content)
file(WRITE ${OUT} "// Generated from src/wayfinder/sql/schema.sql.\n"
                  "namespace sluice::wf::detail {\n"
                  "extern const char* const kSchemaSql;\n"
                  "const char* const kSchemaSql = R\"wfsql(${content})wfsql\";\n"
                  "}  // namespace sluice::wf::detail\n")

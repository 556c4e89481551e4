// Status propagation macros. Abseil 20220623 ships none, so pghaul has its own.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

#define PGH_STATUS_CONCAT_INNER(a, b) a##b
#define PGH_STATUS_CONCAT(a, b) PGH_STATUS_CONCAT_INNER(a, b)

// Returns from the enclosing function if `expr` yields a non-OK absl::Status.
#define PGH_RETURN_IF_ERROR(expr)                    \
  do {                                               \
    ::absl::Status pgh_status_ = (expr);             \
    if (!pgh_status_.ok()) return pgh_status_;       \
  } while (false)

// `PGH_ASSIGN_OR_RETURN(auto x, MakeX());` assigns the value of an absl::StatusOr or returns its
// error from the enclosing function.
#define PGH_ASSIGN_OR_RETURN(lhs, expr) \
  PGH_ASSIGN_OR_RETURN_IMPL(PGH_STATUS_CONCAT(pgh_statusor_, __LINE__), lhs, expr)

#define PGH_ASSIGN_OR_RETURN_IMPL(statusor, lhs, expr) \
  auto statusor = (expr);                              \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = *std::move(statusor)

namespace pghaul {

// Returns `status` with `context` prepended to its message ("context: message").
inline absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

}  // namespace pghaul

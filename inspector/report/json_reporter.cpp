#include "report/json_reporter.h"

#include <sstream>

#include "base/hex.h"
#include "report/json_writer.h"

namespace fiberscope::report {
namespace {

void write_optional_text(JsonWriter& json, std::string_view text) {
  if (text.empty()) {
    json.null();
  } else {
    json.value(text);
  }
}

void write_frames(JsonWriter& json, const Stack& stack) {
  json.key("frames");
  json.begin_array();
  for (const Frame& frame : stack.frames) {
    json.begin_object();
    json.key("pc"), json.value(hex(frame.pc));
    json.key("function"), write_optional_text(json, frame.function);
    json.key("offset"), json.value(frame.function_offset);
    json.key("module"), write_optional_text(json, frame.module);
    json.key("file"), write_optional_text(json, frame.file);
    json.key("line");
    if (frame.line > 0) {
      json.value(frame.line);
    } else {
      json.null();
    }
    json.key("inlined"), json.value(frame.inlined);
    json.key("stack"), json.value(stack_kind_name(frame.stack));
    json.key("args");
    if (!frame.args_known) {
      json.null();
    } else {
      json.begin_array();
      for (const Argument& arg : frame.args) {
        json.begin_object();
        json.key("name"), json.value(arg.name);
        json.key("value");
        if (arg.status == Argument::Status::ok) {
          json.value(arg.value);
        } else {
          json.null();
        }
        json.key("status"), json.value(argument_status_name(arg.status));
        if (!arg.detail.empty()) json.key("detail"), json.value(arg.detail);
        json.end_object();
      }
      json.end_array();
    }
    json.end_object();
  }
  json.end_array();
  json.key("truncated"), json.value(stack.truncated);
  json.key("stop_reason"), write_optional_text(json, stack.stop_reason);
}

template <class T>
void write_optional_number(JsonWriter& json, const std::optional<T>& number) {
  if (number) {
    json.value(*number);
  } else {
    json.null();
  }
}

}  // namespace

std::string render_json(const Dump& dump) {
  std::ostringstream out;
  write_json(dump, out);
  return std::move(out).str();
}

void write_json(const Dump& dump, std::ostream& out, const FiberStackSource& stacks) {
  JsonWriter json(out);
  json.begin_object();
  json.key("schema_version"), json.value(kJsonSchemaVersion);
  json.key("pid"), json.value(dump.pid);
  json.key("exe"), json.value(dump.exe_path);
  json.key("source");
  json.begin_object();
  json.key("kind"), json.value(source_kind_name(dump.source.kind));
  json.key("core_path"), write_optional_text(json, dump.source.core_path);
  json.end_object();
  json.key("target_stopped"), json.value(dump.source.kind != Source::Kind::live_no_stop);
  json.key("pause_ms"), write_optional_number(json, dump.pause_ms);
  json.key("crash");
  if (dump.crash) {
    const Crash& crash = *dump.crash;
    json.begin_object();
    json.key("tid"), json.value(crash.tid);
    json.key("signal"), json.value(crash.signal);
    json.key("signal_name"), json.value(crash.signal_name);
    json.key("fault_address");
    if (crash.fault_address) {
      json.value(hex(*crash.fault_address));
    } else {
      json.null();
    }
    json.key("fiber"), write_optional_number(json, crash.fiber_id);
    json.end_object();
  } else {
    json.null();
  }
  json.key("fiber_table"), json.value(dump.has_fiber_table);
  json.key("fibers_created"), json.value(dump.fibers_created);

  json.key("threads");
  json.begin_array();
  for (const Thread& thread : dump.threads) {
    json.begin_object();
    json.key("tid"), json.value(thread.tid);
    json.key("name"), json.value(thread.name);
    json.key("fiber"), write_optional_number(json, thread.fiber_id);
    write_frames(json, thread.stack);
    json.end_object();
    json.flush();
  }
  json.end_array();

  json.key("fibers");
  json.begin_array();
  for (const Fiber& fiber : dump.fibers) {
    json.begin_object();
    json.key("id"), json.value(fiber.id);
    json.key("name"), json.value(fiber.name);
    json.key("state"), json.value(fiber.state);
    json.key("wait_reason"), write_optional_text(json, fiber.wait_reason);
    json.key("wait_object");
    if (fiber.wait_object) {
      json.value(hex(fiber.wait_object));
    } else {
      json.null();
    }
    json.key("state_since_ns"), write_optional_number(json, fiber.state_since_ns);
    json.key("time_in_state_ns"), write_optional_number(json, fiber.time_in_state_ns);
    json.key("thread"), write_optional_number(json, fiber.thread);
    json.key("record"), write_optional_text(json, fiber.integrity);
    json.key("crashed"), json.value(fiber.crashed);
    json.key("created_by");
    if (fiber.created_by) {
      json.begin_object();
      json.key("pc"), json.value(hex(fiber.created_by->pc));
      json.key("function"), write_optional_text(json, fiber.created_by->function);
      json.key("file"), write_optional_text(json, fiber.created_by->file);
      json.key("line");
      if (fiber.created_by->line > 0) {
        json.value(fiber.created_by->line);
      } else {
        json.null();
      }
      json.end_object();
    } else {
      json.null();
    }
    write_frames(json, stacks ? stacks(fiber) : fiber.stack);
    json.end_object();
    json.flush();  // what keeps a dump of many fibers from ever being one string
  }
  json.end_array();

  json.key("findings");
  json.begin_array();
  for (const Finding& finding : dump.findings) {
    json.begin_object();
    json.key("kind"), json.value(finding.kind);
    json.key("fiber"), write_optional_number(json, finding.fiber_id);
    json.key("frame"), write_optional_text(json, finding.frame);
    json.key("message"), json.value(finding.message);
    json.end_object();
  }
  json.end_array();

  json.key("errors");
  json.begin_array();
  for (const DumpError& error : dump.errors) {
    json.begin_object();
    json.key("message"), json.value(error.message);
    json.key("fiber"), write_optional_number(json, error.fiber_id);
    json.key("thread"), write_optional_number(json, error.tid);
    json.end_object();
  }
  json.end_array();

  json.key("warnings");
  json.begin_array();
  for (const std::string& warning : dump.warnings) json.value(warning);
  json.end_array();
  json.end_object();
  json.flush();
  out << '\n';
}

}  // namespace fiberscope::report

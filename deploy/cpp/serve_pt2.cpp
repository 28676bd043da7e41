// Serve an AOTInductor package (.pt2) from C++: libtorch and the compiled model, no Python.
//
//   serve_pt2 MODEL.pt2 INPUT.bin ROWS COLS float32|float64 REPEAT THREADS
//
// INPUT.bin holds x[ROWS, COLS] as raw little-endian values of the dtype. Prints one JSON object
// on stdout, as deploy/node/serve.js does: dims and data of y_pred (17 significant digits, exact
// for float32 and float64), times_ms (REPEAT timed calls after the first), load_ms (the package
// loaded and its first call run) and mapped: every file this process has mapped, read from
// /proc/self/maps after serving, so the caller can see that no libpython is among them.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <chrono>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <set>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::set<std::string> mapped_files() {
  std::ifstream maps("/proc/self/maps");
  std::set<std::string> files;
  for (std::string line; std::getline(maps, line);) {
    auto slash = line.find('/');
    if (slash != std::string::npos) files.insert(line.substr(slash));
  }
  return files;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) {
    std::cerr << "usage: serve_pt2 MODEL.pt2 INPUT.bin ROWS COLS float32|float64 REPEAT THREADS\n";
    return 2;
  }
  const std::string model = argv[1], input = argv[2], dtype = argv[5];
  const int64_t rows = std::stoll(argv[3]), cols = std::stoll(argv[4]);
  const int repeat = std::stoi(argv[6]), threads = std::stoi(argv[7]);
  if (dtype != "float32" && dtype != "float64") {
    std::cerr << "serve_pt2: dtype must be float32 or float64, not " << dtype << "\n";
    return 2;
  }
  at::set_num_threads(threads);
  const auto kind = dtype == "float64" ? at::kDouble : at::kFloat;
  auto x = at::empty({rows, cols}, at::TensorOptions().dtype(kind));
  std::ifstream in(input, std::ios::binary);
  in.read(static_cast<char*>(x.data_ptr()), x.nbytes());
  if (in.gcount() != static_cast<std::streamsize>(x.nbytes())) {
    std::cerr << "serve_pt2: " << input << " holds fewer than " << rows << "x" << cols << " " << dtype << " values\n";
    return 2;
  }

  at::Tensor y;
  double load_ms = 0;
  std::vector<double> times_ms;
  try {
    const auto start = Clock::now();
    torch::inductor::AOTIModelPackageLoader loader(model);
    y = loader.run({x})[0];  // the first call: part of the load, as a session's first run is elsewhere
    load_ms = ms_since(start);
    for (int i = 0; i < repeat; ++i) {
      const auto call = Clock::now();
      auto out = loader.run({x});
      times_ms.push_back(ms_since(call));
    }
  } catch (const std::exception& exc) {
    std::string what = exc.what();
    std::cerr << "serve_pt2: " << model << ": " << what.substr(0, what.find('\n')) << "\n";
    return 1;
  }

  y = y.to(at::kDouble).contiguous();
  std::cout << std::setprecision(17) << "{\"dims\": [" << y.size(0) << ", " << y.size(1) << "], \"data\": [";
  const double* data = y.data_ptr<double>();
  for (int64_t i = 0; i < y.numel(); ++i) std::cout << (i ? ", " : "") << data[i];
  std::cout << "], \"times_ms\": [";
  for (size_t i = 0; i < times_ms.size(); ++i) std::cout << (i ? ", " : "") << times_ms[i];
  std::cout << "], \"load_ms\": " << load_ms << ", \"mapped\": [";
  bool first = true;
  for (const auto& file : mapped_files()) {
    std::cout << (first ? "" : ", ") << json_string(file);
    first = false;
  }
  std::cout << "]}\n";
  return 0;
}

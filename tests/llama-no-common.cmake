# Included by CMake right after project(llama.cpp) (see install-llm-server.sh): skip llama.cpp's
# "common" helper library, which llama-cpp-python builds but never loads.
set(LLAMA_BUILD_COMMON OFF)

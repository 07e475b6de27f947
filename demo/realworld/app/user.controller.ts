import { Body, Controller, Param, ParseIntPipe, Post, Put } from '@nestjs/common';
import type { CreateUserDto, UpdateUserDto, UserRO } from './dto.js';
// biome-ignore lint/style/useImportType: Nest injects by the class that design:paramtypes records
import { UserService } from './user.service.js';

@Controller('users')
export class UserController {
  constructor(private readonly userService: UserService) {}

  @Post()
  async create(@Body('user') userData: CreateUserDto): Promise<UserRO> {
    return this.userService.create(userData);
  }

  @Put(':id')
  async update(@Param('id', ParseIntPipe) id: number, @Body('user') userData: UpdateUserDto): Promise<UserRO> {
    return this.userService.update(id, userData);
  }
}
